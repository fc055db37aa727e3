"""The training loop's loaders (``engine/datasets.py``): workers kept across epochs, and exact
resume with them; ``data.num_workers: auto``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch

from medspikeformer.engine import datasets as datasets_mod
from medspikeformer.engine import train
from medspikeformer.engine.step import TrainingStep

from .helpers import quiet, tiny_config


def _record_batches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Digests of every training batch (image and mask) the step sees, in order."""
    seen: list[str] = []
    real = TrainingStep.loss_step

    def loss_step(self: TrainingStep, batch: Any) -> Any:
        h = hashlib.sha256(batch["image"].numpy().tobytes())
        h.update(batch["mask"].numpy().tobytes())
        seen.append(h.hexdigest())
        return real(self, batch)

    monkeypatch.setattr(TrainingStep, "loss_step", loss_step)
    return seen


def _batches_of_resumed_epoch_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    over = {
        "train": {"epochs": 2, "batch_size": 3, "progress": False},
        "data": {"augment": "paper", "num_workers": 2},
    }
    seen = _record_batches(monkeypatch)
    train(tiny_config(tmp_path / "a", **over), log=quiet)
    straight = list(seen)
    seen.clear()
    split = tiny_config(tmp_path / "b", **over)
    split["train"]["epochs"] = 1
    train(split, log=quiet)
    split["train"]["epochs"] = 2
    train(split, resume=tmp_path / "b", log=quiet)
    return straight, list(seen)


def test_resume_with_persistent_workers_gives_the_same_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 epochs straight vs 1 + resume + 1, 2 workers kept across epochs, augmentation on: the
    same augmented batches in the same order (the workers re-seed from the epoch's seed)."""
    loaders: list[Any] = []
    real = datasets_mod.build_loader

    def spy(*args: Any, **kwargs: Any) -> Any:
        loaders.append(real(*args, **kwargs))
        return loaders[-1]

    monkeypatch.setattr("medspikeformer.engine.trainer.build_loader", spy)
    straight, resumed = _batches_of_resumed_epoch_2(tmp_path, monkeypatch)
    assert loaders and all(ld.persistent_workers and ld.num_workers == 2 for ld in loaders)
    assert len(straight) == len(resumed) == 4  # 6 train images, batch 3, 2 epochs
    assert len(set(straight)) == 4  # the batches differ between steps and epochs
    assert straight == resumed


def test_resume_with_workers_seeded_by_their_own_rng_would_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above can fail: persistent workers that keep the RNG of the epoch they started
    in draw other augmentations in epoch 2 than workers started for it."""
    real = datasets_mod.build_loader
    monkeypatch.setattr(
        "medspikeformer.engine.trainer.build_loader",
        lambda *a, seed_of=None, **k: real(*a, **k),
    )
    straight, resumed = _batches_of_resumed_epoch_2(tmp_path, monkeypatch)
    assert straight[:2] == resumed[:2] and straight[2:] != resumed[2:]


@pytest.mark.parametrize(
    ("value", "device", "cpus", "expected"),
    [("auto", "cpu", 16, 0), ("auto", "cuda", 16, 4), ("auto", "cuda", 2, 2), (3, "cuda", 16, 3)],
)
def test_num_workers_auto(
    monkeypatch: pytest.MonkeyPatch, value: Any, device: str, cpus: int, expected: int
) -> None:
    monkeypatch.setattr(datasets_mod.os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    assert datasets_mod.resolve_num_workers(value, torch.device(device)) == expected


@pytest.mark.parametrize("value", [-1, "four", 1.5, True])
def test_num_workers_bad_value_is_one_clear_error(tmp_path: Path, value: Any) -> None:
    from medspikeformer.engine.config import config_from_dict, validate_config
    from medspikeformer.errors import ConfigError

    cfg = config_from_dict(tiny_config(tmp_path / "r", data={"num_workers": value}))
    with pytest.raises(ConfigError, match=r"data\.num_workers=.* must be an integer >= 0 or auto"):
        validate_config(cfg, check_model=False)
