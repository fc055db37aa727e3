"""Run the real ``medspikeformer`` command line with test hooks set from environment variables.

Used by the kill/resume and NaN tests as ``python tests/reliability/hooked_cli.py train ...``: the
package code is unchanged, the hooks only observe it, pause it at a chosen point, or feed it a bad
sample. Hooks (all optional):

``MSF_HOOK_EVENTS=FILE``
    Append one line per event, flushed at once, so the parent can follow the run:
    ``step N`` after every optimiser step of the student (global count over all epochs), and
    ``ckpt NAME PHASE`` at each phase of each checkpoint write (see below).
``MSF_HOOK_PAUSE=NAME:K:PHASE``
    At the K-th write of checkpoint NAME (``last.pt``/``best.pt``), stop at PHASE and wait to be
    killed. Phases of the atomic writer (``medspikeformer.outputs``, used for checkpoints), in order:
    ``half-written`` (half of the bytes in the temp file, flushed), ``before-fsync`` (all bytes
    written and flushed), ``before-rename`` (fsync'ed, ``os.replace`` pending), ``after-rename``
    (target replaced, directory not yet fsync'ed).
``MSF_HOOK_SNAPSHOT_DIR=DIR``
    After each completed ``last.pt`` write, copy it to ``DIR/last.epoch<E>.pt``.
``MSF_HOOK_NAN_AFTER_STEP=N``
    Once N student optimiser steps have run, the next training item fetched (or the one whose id
    is ``MSF_HOOK_NAN_ID``), and that same item ever after, returns an image full of NaN — a
    corrupt sample. ``MSF_HOOK_NAN_VALUE`` (default ``nan``) may be ``inf``.
``MSF_HOOK_NAN_GRAD_AFTER_STEP=N``
    Once N student optimiser steps have run, the gradient of the student's first parameter is
    replaced by NaN in every backward pass (the loss itself stays finite).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

EVENTS = os.environ.get("MSF_HOOK_EVENTS")
PAUSE = os.environ.get("MSF_HOOK_PAUSE")
SNAPSHOT_DIR = os.environ.get("MSF_HOOK_SNAPSHOT_DIR")
NAN_AFTER = os.environ.get("MSF_HOOK_NAN_AFTER_STEP")
NAN_ID = os.environ.get("MSF_HOOK_NAN_ID")
NAN_VALUE = float(os.environ.get("MSF_HOOK_NAN_VALUE", "nan"))
NAN_GRAD_AFTER = os.environ.get("MSF_HOOK_NAN_GRAD_AFTER_STEP")

_state: dict[str, Any] = {"steps": 0, "student_opt": None, "writes": {}, "current": None}


def event(text: str) -> None:
    """Append one event line to the events file (flushed before returning)."""
    if EVENTS:
        with open(EVENTS, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()


def _maybe_pause(phase: str) -> None:
    current = _state["current"]
    if current is None:
        return
    name, count = current
    event(f"ckpt {name} {count} {phase}")
    if PAUSE:
        want_name, want_count, want_phase = PAUSE.split(":")
        if (name, count, phase) == (want_name, int(want_count), want_phase):
            event("paused")
            while True:  # the parent sends SIGKILL
                time.sleep(60)


def install() -> None:
    """Install the hooks (before the command runs)."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from medspikeformer import outputs
    from medspikeformer.engine import checkpoint as ckpt
    from medspikeformer.engine import step as step_mod

    real_init = step_mod.TrainingStep.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        _state["student_opt"] = self.opt  # the run's (latest) training step's student optimiser

    step_mod.TrainingStep.__init__ = init

    def on_step(opt: torch.optim.Optimizer, *_: Any) -> None:
        if opt is _state["student_opt"]:
            _state["steps"] += 1
            event(f"step {_state['steps']}")

    register_optimizer_step_post_hook(on_step)

    real_atomic = ckpt.atomic_write_bytes
    real_fdopen, real_replace = os.fdopen, os.replace
    real_fsync_dir = outputs.fsync_dir
    # The writer's frames: the bytes are written in outputs.atomic_write_bytes, the rename is done
    # by the outputs.atomic_path context manager.
    write_code = outputs.atomic_write_bytes.__code__
    rename_code = outputs.atomic_path.__wrapped__.__code__

    class HalfPausingFile:
        """File wrapper: writes half of the first payload, flushes, then pauses if asked."""

        def __init__(self, fh: Any) -> None:
            self._fh = fh

        def write(self, data: bytes) -> int:
            half = len(data) // 2
            self._fh.write(data[:half])
            self._fh.flush()
            _maybe_pause("half-written")
            self._fh.write(data[half:])
            return len(data)

        def flush(self) -> None:
            self._fh.flush()
            _maybe_pause("before-fsync")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._fh, name)

        def __enter__(self) -> HalfPausingFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self._fh.close()

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        fh = real_fdopen(fd, *args, **kwargs)
        if _state["current"] is not None and sys._getframe(1).f_code is write_code:
            return HalfPausingFile(fh)
        return fh

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if _state["current"] is not None and sys._getframe(1).f_code is rename_code:
            _maybe_pause("before-rename")
        real_replace(src, dst, *args, **kwargs)

    def fsync_dir(directory: Path) -> None:
        if _state["current"] is not None:
            _maybe_pause("after-rename")
        real_fsync_dir(directory)

    def atomic_write_bytes(path: Any, data: bytes) -> None:
        name = Path(path).name
        if name not in ("last.pt", "best.pt"):
            return real_atomic(path, data)
        count = _state["writes"].get(name, 0) + 1
        _state["writes"][name] = count
        _state["current"] = (name, count)
        try:
            real_atomic(path, data)
        finally:
            _state["current"] = None
        event(f"ckpt {name} {count} done")
        if SNAPSHOT_DIR and name == "last.pt":
            epoch = ckpt.load_checkpoint(path)["epoch"]
            shutil.copyfile(path, Path(SNAPSHOT_DIR) / f"last.epoch{epoch}.pt")
        return None

    os.fdopen, os.replace = fdopen, replace  # type: ignore[assignment]
    outputs.fsync_dir = fsync_dir
    # save_checkpoint looks the writer up in the module's globals at call time.
    ckpt.atomic_write_bytes = atomic_write_bytes

    if NAN_AFTER is not None:
        _install_nan_sample(int(NAN_AFTER))
    if NAN_GRAD_AFTER is not None:
        _install_nan_gradient(int(NAN_GRAD_AFTER))


def _install_nan_gradient(after_steps: int) -> None:
    import torch

    from medspikeformer.engine import step

    real_build = step.build_model_from_config

    def build_model_from_config(*args: Any, **kwargs: Any) -> Any:
        model = real_build(*args, **kwargs)  # the trainer builds only the student with it
        first = next(p for p in model.parameters() if p.requires_grad)

        def poison(grad: torch.Tensor) -> torch.Tensor:
            if _state["steps"] >= after_steps:
                event("nan-grad")
                return torch.full_like(grad, float("nan"))
            return grad

        first.register_hook(poison)
        return model

    step.build_model_from_config = build_model_from_config


def _install_nan_sample(after_steps: int) -> None:
    import medspikeformer.data as data_pkg

    real_build = data_pkg.build_dataset

    def build_dataset(name: str, *args: Any, **kwargs: Any) -> Any:
        ds = real_build(name, *args, **kwargs)
        if kwargs.get("split", args[1] if len(args) > 1 else "train") != "train":
            return ds
        base = type(ds)

        def getitem(self: Any, index: int) -> dict[str, Any]:
            item = base.__getitem__(self, index)
            if _state["steps"] < after_steps:
                return item
            poisoned_id = _state.setdefault("poisoned_id", NAN_ID or item["id"])
            if item["id"] == poisoned_id:
                item = dict(item)
                item["image"] = item["image"].clone().fill_(NAN_VALUE)
                event(f"nan {poisoned_id}")
            return item

        ds.__class__ = type(f"Poisoned{base.__name__}", (base,), {"__getitem__": getitem})
        return ds

    data_pkg.build_dataset = build_dataset


if __name__ == "__main__":
    install()
    from medspikeformer.cli import main

    sys.exit(main(sys.argv[1:]))
