"""Process-level allocator settings: applied once, opt-out honoured, results unchanged."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import ctypes, sys, torch
from medspikeformer.runtime import apply_requested_settings, tune_cpu_allocator
first = apply_requested_settings()
second = tune_cpu_allocator() if first else False
# the same arithmetic must come out whether or not the allocator is tuned
torch.manual_seed(0)
x = torch.randn(6_000_000)
y = (x * 2).sum().item()
print(first, second, y)
"""


def _run(env_extra: dict[str, str]) -> list[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "MEDSPIKEFORMER_MALLOC"} | env_extra
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_tuned_only_when_asked_and_idempotent() -> None:
    tuned = _run({"MEDSPIKEFORMER_MALLOC": "reuse"})
    plain = _run({})
    assert tuned[:2] == ["True", "True"]
    assert plain[:2] == ["False", "False"]
    assert tuned[2] == plain[2]  # the same arithmetic either way


def test_cli_and_engine_apply_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import medspikeformer.runtime as rt
    from medspikeformer.cli import main
    from medspikeformer.engine import train
    from medspikeformer.errors import CheckpointError

    calls: list[int] = []
    monkeypatch.setattr(rt, "apply_requested_settings", lambda: calls.append(1) or True)
    args = ["experiment", "compare", "--dataset", "synthetic", "--out", str(tmp_path), "--list"]
    assert main(args) == 0
    assert calls == [1]
    with pytest.raises(CheckpointError):
        train(resume=tmp_path / "nothing-here")
    assert calls == [1, 1]


def test_cuda_expected_needs_a_driver_and_visible_devices(tmp_path) -> None:
    from medspikeformer.runtime import cuda_expected

    node = tmp_path / "nvidiactl"
    node.touch()
    absent = (str(tmp_path / "none"),)
    assert cuda_expected({}, (str(node),)) is True
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": "0"}, (str(node),)) is True
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": ""}, (str(node),)) is False
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": "-1"}, (str(node),)) is False
    assert cuda_expected({}, absent) is False


def test_cpu_only_settings_stay_off_where_a_gpu_is_expected(monkeypatch) -> None:
    """Neither the opt-in allocator setting nor the huge-page switch reaches a GPU run."""
    import os

    import medspikeformer.runtime as rt

    monkeypatch.setenv("MEDSPIKEFORMER_MALLOC", "reuse")
    monkeypatch.setattr(rt, "cuda_expected", lambda: True)
    tuned: list[int] = []
    monkeypatch.setattr(rt, "tune_cpu_allocator", lambda: tuned.append(1) or True)
    assert rt.apply_requested_settings() is False and tuned == []
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    # A child that sees an NVIDIA driver node (faked: the check runs before torch is imported).
    code = (
        "import os; real = os.path.exists; "
        "os.path.exists = lambda p: p == '/dev/nvidiactl' or real(p); "
        "import medspikeformer; print(os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "unset"
