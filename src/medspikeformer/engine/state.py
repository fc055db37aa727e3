"""What a run carries between epochs and saves for ``--resume``: RNG states, the loop state and
the ``resume`` section of ``last.pt`` (beside :mod:`medspikeformer.engine.checkpoint`, which writes
the file).

The data order of epoch e depends only on (seed, e), and every epoch re-seeds the RNGs from
:func:`epoch_seed` (seed, e, rank), so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "LoopState",
    "capture_rng",
    "epoch_seed",
    "restore_rng",
    "seed_everything",
]


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A distinct 63-bit seed per (seed, epoch, rank), stable across runs and resumes."""
    return int(
        np.random.SeedSequence([seed, epoch, rank]).generate_state(2, np.uint32).view(np.uint64)[0]
        >> 1
    )


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """RNG states of python, numpy and torch as tensors/primitives (loadable with weights_only)."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    out: dict[str, Any] = {
        "python": {"version": version, "state": list(state), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class LoopState:
    """What survives between epochs (saved as ``resume.loop`` in last.pt for --resume)."""

    epoch: int = 0  # last finished epoch (1-based); 0 = none yet
    best_miou: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    nan_skipped: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "nan_skipped": self.nan_skipped,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, loop: Mapping[str, Any]) -> LoopState:
        """Inverse of :meth:`to_dict` (the ``resume.loop`` section of a checkpoint)."""
        return cls(
            epoch=int(loop["epoch"]),
            best_miou=float(loop["best_miou"]),
            best_epoch=int(loop["best_epoch"]),
            bad_epochs=int(loop["bad_epochs"]),
            nan_skipped=int(loop["nan_skipped"]),
            history=list(loop["history"]),
        )
