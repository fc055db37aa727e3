"""Numerical faults (issue 6, part 4), end to end through ``medspikeformer train``.

A corrupt training sample (an image full of NaN or Inf, fed by ``hooked_cli.py`` from epoch 2
on), or a NaN gradient with a finite loss, must

* with ``train.nan_policy=stop`` (the default): stop the run with exit 2 and one ``error:`` line
  saying which epoch/step and what was non-finite, with no traceback; ``last.pt`` stays exactly the
  file written at the end of epoch 1 (byte for byte), ``best.pt`` stays loadable, the lock is
  released;
* with ``train.nan_policy=skip``: skip each such step without updating the weights, count it
  (``nan_skipped`` in metrics.csv and in last.pt) and finish with finite weights.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from medspikeformer.engine.checkpoint import load_checkpoint

from .helpers import REPO, cli_env, error_lines
from .test_kill_resume import STEPS_PER_EPOCH, TINY_RUN

HOOKED_CLI = Path(__file__).with_name("hooked_cli.py")


def run_hooked(tmp_path: Path, *sets: str, **hooks: str) -> subprocess.CompletedProcess[str]:
    """``hooked_cli.py train`` on the tiny run (2 epochs, no augmentation), with hooks."""
    cfg = {**TINY_RUN, "train": {**TINY_RUN["train"], "epochs": 2}}
    cfg["data"] = {**TINY_RUN["data"], "augment": "none"}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    snaps = tmp_path / "snapshots"
    snaps.mkdir(exist_ok=True)
    args = ["train", "--config", str(path), "--out", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    env = cli_env(
        MSF_HOOK_EVENTS=str(tmp_path / "events.txt"), MSF_HOOK_SNAPSHOT_DIR=str(snaps), **hooks
    )
    return subprocess.run(
        [sys.executable, str(HOOKED_CLI), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def assert_stopped_keeping_epoch_1(tmp_path: Path, res: subprocess.CompletedProcess[str]) -> str:
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    assert res.returncode == 2, out
    lines = error_lines(res.stderr)
    assert len(lines) == 1, out
    line = lines[0]
    assert "non-finite" in line and "epoch 2" in line and "nan_policy" in line, line
    run = tmp_path / "run"
    assert str(run / "last.pt") in line and "kept" in line, line
    last = run / "last.pt"
    assert last.read_bytes() == (tmp_path / "snapshots" / "last.epoch1.pt").read_bytes()
    assert load_checkpoint(last)["epoch"] == 1
    load_checkpoint(run / "best.pt")
    assert not (run / ".lock").exists()
    assert not list(run.glob(".*.tmp"))
    return line


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_sample_stops_training_and_keeps_last_good_checkpoint(
    tmp_path: Path, value: str
) -> None:
    """A NaN/Inf training image in epoch 2 → clear stop; epoch 1's last.pt untouched."""
    res = run_hooked(
        tmp_path, MSF_HOOK_NAN_AFTER_STEP=str(STEPS_PER_EPOCH), MSF_HOOK_NAN_VALUE=value
    )
    assert_stopped_keeping_epoch_1(tmp_path, res)
    assert "nan" in (tmp_path / "events.txt").read_text().split()


def test_non_finite_gradient_with_finite_loss_stops_training(tmp_path: Path) -> None:
    """A NaN gradient (loss finite) in epoch 2 → the same clear stop; grad_norm is reported."""
    res = run_hooked(tmp_path, MSF_HOOK_NAN_GRAD_AFTER_STEP=str(STEPS_PER_EPOCH))
    line = assert_stopped_keeping_epoch_1(tmp_path, res)
    assert "grad_norm=nan" in line, line


def test_skip_policy_skips_and_counts_non_finite_steps(tmp_path: Path) -> None:
    """nan_policy=skip: the batch holding the bad sample is skipped once per epoch and counted;
    the run finishes and its weights are finite."""
    res = run_hooked(tmp_path, "train.nan_policy=skip", MSF_HOOK_NAN_AFTER_STEP="0")
    assert res.returncode == 0, res.stdout + res.stderr
    run = tmp_path / "run"
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(float(r["nan_skipped"])) for r in rows] == [1, 1], rows
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["resume"]["loop"]["nan_skipped"] == 2
    for key, value in ckpt["state_dict"].items():
        assert torch.isfinite(value.float()).all(), key
    assert "skipped 1 non-finite steps" in res.stdout
