"""Process-level settings: the CPU tensor cache applied once, opt-out honoured, results unchanged."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

CHILD = """
import sys, torch
from medspikeformer import cpu_cache
from medspikeformer.runtime import apply_process_settings
first = apply_process_settings()
second = apply_process_settings()
# the same arithmetic must come out whether or not the cache is the allocator
torch.manual_seed(0)
x = torch.randn(6_000_000)
y = (x * 2).sum().item()
print(first, second, cpu_cache.active(), y)
"""


def _run(env_extra: dict[str, str]) -> list[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSPIKEFORMER_CPU_CACHE")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=env | env_extra,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_cache_installed_by_default_opt_out_honoured_idempotent() -> None:
    cached = _run({})
    plain = _run({"MEDSPIKEFORMER_CPU_CACHE": "0"})
    assert cached[:3] == ["True", "True", "True"]
    assert plain[:3] == ["False", "False", "False"]
    assert cached[3] == plain[3]  # the same arithmetic either way


def test_cli_and_engine_apply_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import medspikeformer.runtime as rt
    from medspikeformer.cli import main
    from medspikeformer.engine import train
    from medspikeformer.errors import CheckpointError

    calls: list[int] = []
    monkeypatch.setattr(rt, "apply_process_settings", lambda: calls.append(1) or True)
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
    assert cuda_expected({}, (str(node),), torch_cuda=True) is True
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": "0"}, (str(node),), torch_cuda=True) is True
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": ""}, (str(node),), torch_cuda=True) is False
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": "-1"}, (str(node),), torch_cuda=True) is False
    assert cuda_expected({}, absent, torch_cuda=True) is False
    # A CPU-only torch computes on the CPU whatever driver the machine has: CPU settings apply.
    assert cuda_expected({}, (str(node),), torch_cuda=False) is False
    assert cuda_expected({}, (str(node),)) is (torch.version.cuda is not None)


def test_cpu_torch_beside_a_gpu_driver_warns_once(tmp_path, monkeypatch, capsys) -> None:
    """A CPU-only torch on a machine with an NVIDIA driver: one warning line naming the fix,
    once per process, and none without a driver."""
    import medspikeformer.runtime as rt

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(rt, "_state", {})
    monkeypatch.setattr(rt, "DRIVER_PATHS", (str(tmp_path / "nvidiactl"),))
    assert rt.resolve_device("auto").type == "cpu"
    assert capsys.readouterr().err == ""
    (tmp_path / "nvidiactl").touch()
    assert rt.resolve_device("auto").type == "cpu"
    assert rt.resolve_device(None).type == "cpu"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "NVIDIA driver is present" in lines[0] and "install a CUDA build of torch" in lines[0]


def test_cpu_only_settings_stay_off_where_a_gpu_is_expected(monkeypatch, tmp_path) -> None:
    """Neither the CPU tensor cache nor the huge-page switch reaches a GPU run."""
    import os

    import medspikeformer.runtime as rt
    from medspikeformer import cpu_cache

    monkeypatch.setattr(rt, "cuda_expected", lambda: True)
    monkeypatch.setattr(rt, "_state", {})
    tuned: list[int] = []
    monkeypatch.setattr(cpu_cache, "install", lambda *a, **k: tuned.append(1) or True)
    assert rt.apply_process_settings() is False and tuned == []
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    # A child that sees an NVIDIA driver node (faked: the check runs before torch is imported).
    # torch is faked by its version.py (read, not imported): a CUDA build gets no CPU settings,
    # a CPU-only build keeps them (it computes on the CPU whatever the machine has).
    for cuda, expected in (("'12.4'", "unset"), ("None", "1")):
        fake = tmp_path / cuda.strip("'") / "torch"
        fake.mkdir(parents=True)
        (fake / "version.py").write_text(f"cuda: Optional[str] = {cuda}\n")
        code = (
            "import os, types, importlib.util as u; real = os.path.exists; "
            "os.path.exists = lambda p: p == '/dev/nvidiactl' or real(p); find = u.find_spec; "
            "u.find_spec = lambda n, *a: types.SimpleNamespace("
            f"submodule_search_locations=[{str(fake)!r}]) if n == 'torch' else find(n, *a); "
            "import medspikeformer; print(os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset'))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected, cuda
