"""The loop's own bookkeeping as callbacks: ``metrics.csv``, ``best.pt`` / ``last.pt``, early
stopping, the time limit, ``summary.json`` and ``training_curves.png``.

:func:`default_callbacks` lists them in the order they run (after the user's callbacks, so that
``last.pt`` saves every callback's state after its epoch); ``train(config,
builtin_callbacks=[...])`` replaces the list. Each writes on rank 0 only (``loop.is_main``); the
best-so-far bookkeeping (``best_miou``, ``best_epoch``, ``bad_epochs``) is the loop's state, saved
in ``last.pt`` as before, and read here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from medspikeformer.engine import checkpoint as ckpt_mod
from medspikeformer.engine.callbacks import Callback, Loop
from medspikeformer.engine.run_dir import write_json, write_metrics_csv

__all__ = [
    "Checkpoints",
    "EarlyStopping",
    "MetricsCSV",
    "Summary",
    "TimeLimit",
    "TrainingCurves",
    "default_callbacks",
]


class _LoopCallback(Callback):
    """A built-in: keeps the loop it is given at ``on_fit_start``."""

    loop: Loop

    def on_fit_start(self, loop: Loop) -> None:
        self.loop = loop


class MetricsCSV(_LoopCallback):
    """``RUN_DIR/metrics.csv``: rewritten from the whole history after every epoch."""

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        if self.loop.is_main:
            write_metrics_csv(self.loop.run_dir / "metrics.csv", self.loop.state.history)


class Checkpoints(_LoopCallback):
    """``best.pt`` when the epoch set a new best val mIoU, ``last.pt`` (with the resume state)
    after every epoch, written in the background (:meth:`Loop.save_last`)."""

    def on_validation_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.metrics = dict(metrics)

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        loop = self.loop
        if not loop.is_main:
            return
        if loop.state.best_epoch == epoch:
            ckpt_mod.save_checkpoint(
                loop.run_dir / "best.pt", loop.checkpoint_payload(self.metrics, with_resume=False)
            )
        loop.save_last(loop.checkpoint_payload(self.metrics, with_resume=True))


class EarlyStopping(_LoopCallback):
    """Stops after ``train.early_stopping`` epochs without a new best val mIoU (0: never)."""

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        patience, bad = self.loop.cfg.train.early_stopping, self.loop.state.bad_epochs
        if patience and bad >= patience:
            self.loop.request_stop(
                "early", f"early stopping: no val mIoU improvement for {bad} epochs"
            )


class TimeLimit(_LoopCallback):
    """Stops after the first epoch that ends ``train.max_time_s`` seconds after the start."""

    def on_fit_start(self, loop: Loop) -> None:
        super().on_fit_start(loop)
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        limit = self.loop.cfg.train.max_time_s
        if limit is not None and time.perf_counter() - self.start >= limit:
            self.loop.request_stop(
                "time", f"time limit: {limit:.0f} s of training reached after epoch {epoch}"
            )


class Summary(_LoopCallback):
    """``summary.json`` (the run's outcome), when the run trained at least one epoch."""

    def on_fit_end(self, summary: Mapping[str, Any]) -> None:
        loop = self.loop
        if not (loop.is_main and loop.state.history):
            return
        cfg = loop.cfg
        keep = {k: v for k, v in summary.items() if k != "is_main"}
        write_json(
            loop.run_dir / "summary.json",
            _plain({"model": cfg.model.name, "dataset": cfg.data.dataset, **keep}),
        )


class TrainingCurves(_LoopCallback):
    """``training_curves.png`` drawn from ``metrics.csv`` at the end (when there is one)."""

    def on_fit_end(self, summary: Mapping[str, Any]) -> None:
        loop, metrics = self.loop, self.loop.run_dir / "metrics.csv"
        if not (loop.is_main and loop.state.history and metrics.is_file()):
            return
        from medspikeformer.viz import plot_training_curves

        plot_training_curves(metrics, loop.run_dir / "training_curves.png")


def _plain(value: Any) -> Any:
    """NaN/inf → None (they are not JSON), at any depth of dicts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def default_callbacks() -> list[Callback]:
    """The built-in bookkeeping of a run, in the order it runs (fresh instances)."""
    return [MetricsCSV(), Checkpoints(), EarlyStopping(), TimeLimit(), Summary(), TrainingCurves()]
