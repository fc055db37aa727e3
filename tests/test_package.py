"""The package root and the command-line dispatcher."""

from __future__ import annotations

import subprocess
import sys

import pytest

import medspikeformer as msf
from medspikeformer.cli import build_parser, main


def test_subpackages_load_on_first_use() -> None:
    assert msf.data.build_dataset is not None
    assert callable(msf.metrics.SegmentationMetrics)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = msf.nope


def test_every_documented_command_is_registered() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    expected = {"data", "demo", "evaluate", "experiment", "explain", "export", "predict"}
    expected |= {"list-models", "profile", "train"}
    assert expected <= set(sub.choices)


def test_user_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "no_such_model", "--size", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no_such_model" in err and "\n" not in err


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "medspikeformer", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"medspikeformer {msf.__version__}"


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("0", "0")])
def test_the_program_enables_huge_pages_unless_set(preset: str | None, expected: str) -> None:
    """The program (not the package) turns on c10's THP allocation before torch loads; a user's
    choice wins."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU-only process, also on a GPU machine
    if preset is not None:
        env["THP_MEM_ALLOC_ENABLE"] = preset
    out = subprocess.run(
        [sys.executable, "-m", "medspikeformer", "allocator"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"THP_MEM_ALLOC_ENABLE={expected}" in out.stdout
