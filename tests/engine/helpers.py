"""Shared tiny configurations for the engine tests (fast on one CPU thread)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tiny_models import TINY_MSF

TINY_MODEL: dict[str, Any] = {"name": "medspikeformer", **TINY_MSF}


def tiny_config(out: Path | str, **sections: Any) -> dict[str, Any]:
    """A nested config dict: tiny MedSpikeFormer, 12 synthetic images at 32², 2 epochs."""
    cfg: dict[str, Any] = {
        "model": dict(TINY_MODEL),
        "data": {
            "dataset": "synthetic",
            "size": 32,
            "split_spec": "50/25/25",
            "augment": "none",
            "cache_dir": None,
            "options": {"num_samples": 12},
        },
        "optim": {"lr": 3e-3},
        "train": {"epochs": 2, "batch_size": 3, "progress": False},
        "out": str(out),
    }
    for key, value in sections.items():
        if key != "model" and isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **copy.deepcopy(value)}
        else:
            cfg[key] = value
    return cfg


def quiet(_msg: str) -> None:
    """Swallow the per-epoch log lines."""
