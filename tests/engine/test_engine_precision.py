"""The training loop in every precision, and its host synchronisations per step.

On a GPU every read of a device value (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``…)
stalls the host until the queued kernels finish. The step reads one value (the fused verdict
"loss and gradients finite", which decides whether the optimiser steps); the loss terms are
summed on the device and read once at the end of the epoch. On CPU the same reads are counted by
patching those methods.
"""

from __future__ import annotations

import csv
import itertools
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import medspikeformer.engine.trainer as trainer_mod
from medspikeformer import list_models
from medspikeformer.engine import train
from medspikeformer.engine.config import config_from_dict
from tiny_models import TINY_UNET

from .helpers import TINY_MODEL, quiet, tiny_config

PRECISIONS = ("fp32", "bf16", "fp16")
#: |loss term − fp32| allowed for one step (docs/training.md, "Precision").
TOLERANCES = {
    "train_bce": 0.02,
    "train_dice": 0.02,
    "train_align": 0.05,
    "train_teacher_seg": 0.02,
    "train_total": 0.05,
}
READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__")


def _options(name: str) -> dict[str, Any]:
    if name == "unet":
        return dict(TINY_UNET)
    return {k: v for k, v in TINY_MODEL.items() if k != "name"}


def _first_row(run: Path) -> dict[str, str]:
    return next(csv.DictReader((run / "metrics.csv").open()))


@pytest.mark.parametrize("name", list_models())
def test_one_step_of_every_model_in_every_precision(tmp_path: Path, name: str) -> None:
    """One training step (4 images, batch 4) per precision from the same initial weights: the
    step's loss is the initial loss, so bf16/fp16 must agree with fp32 within 0.02 (the
    tolerance of tests/test_precision.py), and validation must run in that precision too."""
    rows = {}
    for precision in PRECISIONS:
        cfg = tiny_config(
            tmp_path / precision,
            model={"name": name, **_options(name)},
            data={"options": {"num_samples": 8}},
            train={"epochs": 1, "batch_size": 4, "progress": False, "precision": precision},
        )
        result = train(cfg, log=quiet)
        assert result["epochs_run"] == 1 and result["nan_skipped"] == 0
        rows[precision] = _first_row(tmp_path / precision)
    for precision in ("bf16", "fp16"):
        for term, tol in TOLERANCES.items():
            ref, got = float(rows["fp32"][term]), float(rows[precision][term])
            if math.isnan(ref):  # a term the model does not have (no teacher, no alignment)
                assert math.isnan(got), (precision, term)
                continue
            assert math.isfinite(got) and abs(got - ref) < tol, (precision, term, got, ref)
        assert math.isfinite(float(rows[precision]["val_loss"]))
        assert 0.0 <= float(rows[precision]["val_miou"]) <= 1.0


def test_fp16_saves_its_loss_scale_for_resume(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "r", train={"epochs": 1, "precision": "fp16", "progress": False})
    train(cfg, log=quiet)
    from medspikeformer.engine.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "r" / "last.pt")["resume"]["grad_scaler"]
    assert state["scale"] > 0


class _Marked:
    """Iterates a loader and records the read count at each batch (the step boundaries)."""

    def __init__(self, loader: Any, counter: list[int], marks: list[int]) -> None:
        self.loader, self.counter, self.marks = loader, counter, marks

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            self.marks.append(self.counter[0])
            yield batch
        self.marks.append(self.counter[0])


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counter = [0]
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, __original=original, **kwargs):
            counter[0] += 1
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counter


@pytest.mark.parametrize(
    ("precision", "teacher", "clip", "progress"),
    [
        ("fp32", "joint", None, False),
        ("fp32", "none", 1.0, True),
        ("bf16", "joint", 1.0, True),
        ("fp16", "joint", None, False),
        ("fp16", "none", 1.0, True),
    ],
)
def test_at_most_one_host_read_per_step(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
    teacher: str,
    clip: float | None,
    progress: bool,
) -> None:
    """Counts every tensor read between consecutive batches of an epoch of 4 steps: none in
    the steady state where the finite check is deferred (fused Adam, fp32/bf16); one where the
    progress bar reads the loss, or where fp16's scaler needs the per-step verdict (its loss
    rides along in the same read). No "Converting a tensor with requires_grad=True to a scalar"
    warning either."""
    cfg = config_from_dict(
        tiny_config(
            tmp_path / "r",
            teacher={"mode": teacher},
            optim={"lr": 3e-3, "grad_clip": clip},
            data={"options": {"num_samples": 16}},
            train={"epochs": 1, "batch_size": 2, "progress": False, "precision": precision},
        )
    )
    run = trainer_mod._Run(cfg, resume_dir=None, log=quiet)
    try:
        run.setup()
        if progress:
            run.show_progress = True
            monkeypatch.setattr(trainer_mod, "PROGRESS_INTERVAL_S", 0.0)  # update every step
        run.train_epoch(1)  # warm-up epoch: lazy initialisations (optimiser state) happen here
        counter = _count_reads(monkeypatch)
        marks: list[int] = []
        run.train_loader = _Marked(run.train_loader, counter, marks)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*requires_grad=True.*scalar.*")
            out = run.train_epoch(2)
        monkeypatch.undo()
    finally:
        run.close()
    per_step = [b - a for a, b in itertools.pairwise(marks)]
    assert len(per_step) == 4, marks
    # per_step[i] = reads of step i+1 (plus the next batch fetch, which reads nothing)
    expected = 1 if progress or precision == "fp16" else 0
    assert per_step == [expected] * 4, per_step
    assert math.isfinite(out["train_total"]) and out["nan_skipped"] == 0


def test_reads_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter of the test above sees the reads the old step made (float(), bool())."""
    counter = _count_reads(monkeypatch)
    t = torch.ones(2, requires_grad=True).sum()
    float(t.detach())
    bool(torch.isfinite(t).all())
    t.detach().item()
    monkeypatch.undo()
    assert counter[0] == 3


def test_cudnn_benchmark_only_for_cuda_runs(tmp_path: Path) -> None:
    before = torch.backends.cudnn.benchmark
    cfg = config_from_dict(tiny_config(tmp_path / "r"))
    run = trainer_mod._Run(cfg, resume_dir=None, log=quiet)
    try:
        run.setup()
        assert torch.backends.cudnn.benchmark == before  # a CPU run leaves it alone
        assert run.precision == "fp32" and not run.scaler.is_enabled()
    finally:
        run.close()


def test_channels_last_trains(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "r", train={"epochs": 1, "progress": False, "channels_last": True})
    result = train(cfg, log=quiet)
    assert result["epochs_run"] == 1
    plain = tiny_config(tmp_path / "p", train={"epochs": 1, "progress": False})
    ref = train(plain, log=quiet)
    # The memory layout changes the order of some reductions only.
    assert abs(result["final_metrics"]["val_loss"] - ref["final_metrics"]["val_loss"]) < 1e-3


def test_max_time_stops_after_the_epoch_that_passed_it(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "r", train={"epochs": 5, "progress": False, "max_time_s": 1e-6})
    result = train(cfg, log=quiet)
    assert result["epochs_run"] == 1 and result["stopped_on_time"]
