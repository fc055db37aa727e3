"""The CPU tensor cache: reuse of freed blocks, its memory ceiling, results unchanged, opt-out,
build failure, fork safety, and a property test of its bookkeeping over random alloc/free runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspikeformer import cpu_cache

MB = 1 << 20


SLACK_GB = 0.1


def _ceiling(peak_live: int) -> int:
    """The most bytes the cache may hold at this live high-water mark (as the C++ side computes)."""
    slack = int(SLACK_GB * 1e9)
    return peak_live + max(0, min(slack, peak_live, 4 * slack - peak_live))


def _round(n: int) -> int:
    unit = 128 << 10 if n < 4 * MB else 2 * MB
    return (n + unit - 1) // unit * unit


@pytest.fixture
def cache():
    """The cache installed with a known slack; the session's state is restored afterwards."""
    was_active = cpu_cache.active()
    try:
        assert cpu_cache.install(SLACK_GB)
    except RuntimeError as exc:  # pragma: no cover - only without a compiler
        pytest.skip(f"no C++ toolchain to build the cache: {exc}")
    cpu_cache.empty_cache()
    cpu_cache.reset_peak()
    yield cpu_cache
    if not was_active:
        cpu_cache.uninstall()
    else:
        cpu_cache.install()


def test_a_freed_block_is_handed_to_the_next_request_of_its_class(cache) -> None:
    a = torch.empty(10 * MB // 4)
    ptr = a.data_ptr()
    before = cache.stats()
    del a
    assert cache.stats().cached_bytes == before.cached_bytes + _round(10 * MB)
    b = torch.empty(10 * MB // 4 - 100)  # a smaller request of the same 2 MiB class
    assert b.data_ptr() == ptr
    after = cache.stats()
    assert after.hits == before.hits + 1 and after.misses == before.misses


def test_small_requests_go_to_the_replaced_allocator(cache) -> None:
    before = cache.stats()
    small = [torch.empty(1000) for _ in range(50)]
    after = cache.stats()
    assert after.passthrough >= before.passthrough + 50
    assert after.hits == before.hits and after.misses == before.misses
    del small


def test_held_bytes_stay_under_the_ceiling(cache) -> None:
    """live + cached never passes the live high-water mark plus the slack (at most the mark, and
    nothing once the mark passes four times the slack)."""
    keep = [torch.empty(s * MB // 4) for s in (40, 60, 80)]  # 180 MB live: the peak
    peak_live = cache.stats().peak_live
    del keep
    # Now many other sizes come and go: each miss must evict old blocks to stay under the ceiling.
    for s in range(10, 200, 7):
        t = torch.empty(s * MB // 4)
        del t
        st_ = cache.stats()
        assert st_.live_bytes + st_.cached_bytes <= _ceiling(max(st_.peak_live, peak_live))
    assert cache.stats().evictions > 0


def test_a_large_step_holds_no_more_than_its_live_peak(cache) -> None:
    """Past four times the slack in use, the slack is gone: live + cached ≤ the live peak."""
    keep = [torch.empty(150 * MB // 4) for _ in range(3)]  # 450 MB > 4 × 100 MB
    del keep
    for s in (30, 70, 110):  # other classes: each miss evicts down to the peak
        t = torch.empty(s * MB // 4)
        st_ = cache.stats()
        assert st_.live_bytes + st_.cached_bytes <= st_.peak_live
        del t


def test_empty_cache_returns_every_free_block(cache) -> None:
    t = torch.empty(20 * MB // 4)
    del t
    assert cache.stats().cached_bytes > 0
    cache.empty_cache()
    assert cache.stats().cached_bytes == 0


def test_results_are_bit_identical_with_and_without_the_cache(cache) -> None:
    """A spiking model's forward and backward give the same bits with the cache installed as
    with PyTorch's allocator (the cache hands out stale memory: nothing may read it unwritten)."""
    from medspikeformer.models import create_model

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        model = create_model("medspikeformer", base_channels=8, timesteps=2)
        x = torch.randn(2, 3, 128, 128)
        out = model(x)
        out.sum().backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return out.detach(), grad

    for _ in range(2):  # the second pass runs on recycled blocks
        out_c, grad_c = run()
    assert cache.stats().hits > 10
    cache.uninstall()
    out_d, grad_d = run()
    cache.install(SLACK_GB)
    assert torch.equal(out_c, out_d)
    assert torch.equal(grad_c, grad_d)


def test_uninstall_gives_the_allocator_back_and_old_tensors_still_free(cache) -> None:
    t = torch.ones(30 * MB // 4)
    cache.uninstall()
    assert not cache.active()
    u = torch.ones(30 * MB // 4)  # from PyTorch's allocator now
    assert float(t.sum() + u.sum()) == 2 * 30 * MB // 4
    del t, u  # t returns through the cache's deleter, which frees it now
    assert cache.stats().cached_bytes == 0


def test_a_forked_child_allocates_while_a_thread_of_the_parent_does() -> None:
    """A DataLoader-style fork in the middle of allocations by another thread must not leave the
    cache's lock held in the child."""
    code = """
import os, threading, torch
from medspikeformer import cpu_cache
assert cpu_cache.install(0.1)
stop = False
def churn():
    while not stop:
        t = torch.empty(3_000_000)
        del t
th = threading.Thread(target=churn); th.start()
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        x = torch.empty(3_000_000); x.fill_(1.0); os._exit(0 if float(x[0]) == 1.0 else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
stop = True; th.join(); print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_failed_build_warns_once_and_keeps_the_default_allocator(tmp_path) -> None:
    code = """
import warnings
from medspikeformer import cpu_cache
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    print(cpu_cache.install(), cpu_cache.install(), cpu_cache.active(), len(seen))
    print(seen[0].message)
"""
    env = {
        **os.environ,
        "CXX": "/bin/false",
        "MEDSPIKEFORMER_CACHE_DIR": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    first, message = out.stdout.splitlines()[:2]
    assert first == "False False False 1"
    assert message.startswith("CPU tensor cache not available, using PyTorch's default allocator")
    assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("raw", ["-1", "lots", "nan", "inf"])
def test_a_bad_slack_setting_is_a_one_line_error(monkeypatch, raw) -> None:
    from medspikeformer.errors import ConfigError

    monkeypatch.setenv(cpu_cache.ENV_SLACK, raw)
    with pytest.raises(ConfigError, match=r"^MEDSPIKEFORMER_CPU_CACHE_GB=.*expected a number"):
        cpu_cache.slack_from_env()


@pytest.mark.parametrize(
    ("raw", "expected"), [("0", False), ("off", False), ("NO", False), ("1", True), ("", True)]
)
def test_the_switch_reads_the_usual_spellings(monkeypatch, raw, expected) -> None:
    monkeypatch.setenv(cpu_cache.ENV_SWITCH, raw)
    assert cpu_cache.requested() is expected


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.booleans(), st.integers(min_value=cpu_cache.DEFAULT_MIN_BYTES, max_value=24 * MB)
        ),
        min_size=1,
        max_size=40,
    )
)
def test_bookkeeping_over_random_alloc_free_sequences(cache, ops) -> None:
    """live_bytes is the sum of the rounded sizes in use, live + cached stays under the ceiling,
    and no two live tensors share memory (each keeps the value written into it)."""
    cache.empty_cache()
    base = cache.stats()
    live: list[tuple[torch.Tensor, int, float]] = []
    for i, (alloc, nbytes) in enumerate(ops):
        if alloc or not live:
            t = torch.empty(nbytes // 4)
            t.fill_(float(i))
            live.append((t, _round(t.numel() * 4), float(i)))
            del t  # the list holds the only reference
        else:
            live.pop(nbytes % len(live))
        s = cache.stats()
        # A best-fit hit may hand out a block up to a quarter larger than the request's class.
        in_use = sum(r for _, r, _ in live)
        assert in_use <= s.live_bytes - base.live_bytes <= in_use * 1.25 + 1
        assert s.live_bytes + s.cached_bytes <= _ceiling(s.peak_live)
    for t, _, value in live:
        assert bool((t == value).all())
