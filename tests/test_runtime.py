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
