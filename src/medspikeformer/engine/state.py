"""What a run carries between epochs and saves for ``--resume``: RNG states, the loop state and
the checkpoint payload of best.pt / last.pt with its ``resume`` section (beside
:mod:`medspikeformer.engine.checkpoint`, which writes and reads the file).

``resume`` (last.pt only; format 1, unchanged since before issue 13)::

    {"optimizer", "scheduler", "teacher_mode", "teacher_model_name", "teacher_state_dict",
     "teacher_optimizer", "rng": [per-rank capture_rng()], "grad_scaler", "world_size",
     "data_order": {"sampler", "seed", "next_epoch"}, "loop": LoopState.to_dict()}

plus ``"callbacks": {state_key: state}`` only when a callback has a state to keep
(``Callback.state_dict``); a run without one writes exactly the keys above.

The data order of epoch e depends only on (seed, e), and every epoch re-seeds the RNGs from
:func:`epoch_seed` (seed, e, rank), so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medspikeformer.data.preprocessing import training_policy
from medspikeformer.engine import checkpoint as ckpt_mod
from medspikeformer.errors import CheckpointError

# ``step`` arguments below are the run's engine.step.TrainingStep, typed Any: importing it here,
# even for type checking, would make state and step import each other.

__all__ = [
    "LoopState",
    "capture_rng",
    "epoch_seed",
    "restore_rng",
    "restore_training",
    "seed_everything",
    "training_payload",
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
    init: dict[str, Any] | None = None  # where the starting weights came from (train.init_from)
    #: callbacks' states by ``Callback.state_key`` (saved as ``resume.callbacks``, not in ``loop``)
    callbacks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "init": self.init,
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
            init=loop.get("init"),
        )


def training_payload(
    step: Any,
    loop: LoopState,
    metrics: Mapping[str, Any],
    *,
    train_config: Mapping[str, Any],
    resume: Mapping[str, Any] | None = None,
    intensity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """best.pt (``resume=None``) or last.pt: the student's :func:`checkpoint.build_payload` plus,
    for last.pt, the ``resume`` section. ``resume`` holds ``scheduler`` (or None), ``rng`` (every
    rank's :func:`capture_rng`), ``dist`` (:class:`DistInfo`) and optionally ``callbacks`` (their
    states by key); ``intensity``: the training
    data's rule for volumes (``DatasetSource.intensity``), recorded in the preprocessing policy."""
    student = ckpt_mod.unwrap_model(step.student)
    payload = ckpt_mod.build_payload(
        student,
        epoch=loop.epoch,
        metrics=metrics,
        train_config=train_config,
        # how training turned images into inputs: what predict / explain repeat by default
        preprocessing=training_policy(step.cfg.data.size, student.in_channels, intensity).to_dict(),
    )
    if loop.init is not None:
        payload["init"] = loop.init
    if resume is None:
        return payload
    sched, joint, scaler = resume["scheduler"], step.teacher_mode == "joint", step.scaler
    payload["resume"] = {
        "optimizer": step.opt.state_dict(),
        "scheduler": sched.state_dict() if sched is not None else None,
        "teacher_mode": step.teacher_mode,
        "teacher_model_name": step.teacher.model_name if joint else None,
        "teacher_state_dict": {k: v.detach().cpu() for k, v in step.teacher.state_dict().items()}
        if joint
        else None,
        "teacher_optimizer": step.t_opt.state_dict() if step.t_opt is not None else None,
        "rng": resume["rng"],
        # fp16's loss scale (plain numbers); None for fp32/bf16.
        "grad_scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "world_size": resume["dist"].world_size,
        "data_order": {
            "sampler": "DistributedSampler",
            "seed": step.cfg.train.seed,
            "next_epoch": loop.epoch + 1,
        },
        "loop": loop.to_dict(),
    }
    if resume.get("callbacks"):  # only callbacks with a state: a plain run's keys are unchanged
        payload["resume"]["callbacks"] = dict(resume["callbacks"])
    return payload


def restore_training(
    path: Path, step: Any, sched: Any, *, target: str, rank: int, world_size: int
) -> LoopState:
    """Load last.pt at ``path`` into ``step`` (weights, optimisers, scaler), ``sched`` and this
    rank's RNGs; returns the loop state to continue from. ``target`` names the receiving model."""
    ck = ckpt_mod.load_checkpoint(path)
    res = ck.get("resume")
    if not isinstance(res, dict):
        raise CheckpointError(f"{path}: holds no resume state (only last.pt can be resumed)")
    try:
        return _restore(path, ck, res, step, sched, target=target, rank=rank, world_size=world_size)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as exc:
        # A hand-edited or damaged resume section: say so instead of showing a traceback.
        what = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: broken resume section ({what})") from None


def _restore(
    path: Path,
    ck: Mapping[str, Any],
    res: Mapping[str, Any],
    step: Any,
    sched: Any,
    *,
    target: str,
    rank: int,
    world_size: int,
) -> LoopState:
    ckpt_mod.load_state_dict_checked(
        step.student, ck["state_dict"], source=f"{path} (model {ck['model_name']!r})", target=target
    )
    step.opt.load_state_dict(res["optimizer"])
    if sched is not None and res.get("scheduler") is not None:
        sched.load_state_dict(res["scheduler"])
    if step.teacher_mode == "joint":
        if res.get("teacher_state_dict") is None:
            raise CheckpointError(f"{path}: no joint-teacher state to resume from")
        ckpt_mod.check_tensors(path, res["teacher_state_dict"], "resume.teacher_state_dict")
        step.teacher.load_state_dict(res["teacher_state_dict"])
        step.t_opt.load_state_dict(res["teacher_optimizer"])
    if step.scaler.is_enabled() and res.get("grad_scaler"):
        step.scaler.load_state_dict(res["grad_scaler"])
    rngs = res.get("rng") or []
    if rngs:
        same_world = int(res.get("world_size", 1)) == world_size
        restore_rng(rngs[rank] if same_world else rngs[0])
    loop = LoopState.from_dict(res["loop"])
    loop.callbacks = dict(res.get("callbacks") or {})
    return loop
