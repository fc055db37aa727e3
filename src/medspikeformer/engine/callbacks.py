"""The hooks of the training loop (Lightning's callback idea).

Loggers, probes and the loop's own bookkeeping (``metrics.csv``, checkpoints, early stopping,
the time limit, ``summary.json``: :mod:`medspikeformer.engine.builtin_callbacks`) subclass
:class:`Callback`. This module imports nothing from the loop, so that a logger never imports the
training step.

Order of the hooks in one run::

    on_train_start(step)                  # the TrainingStep was built (models, optimisers)
    on_fit_start(loop)                    # set-up and resume done, before the first epoch
    per epoch:
        on_step_end(index, terms)         # after every applied optimiser step
        on_validation_end(epoch, metrics) # the epoch's val_* metrics
        on_epoch_end(epoch, row)          # the epoch's metrics.csv row (loop state updated)
    on_fit_end(summary)                   # the run's outcome (built-ins write summary.json)
    on_train_end(summary)                 # after every on_fit_end: loggers flush and close
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

__all__ = ["Callback", "Loop"]


class Loop(Protocol):
    """What a callback may read from and ask of the running loop (``on_fit_start``'s argument).

    ``state`` is the loop state saved in ``last.pt`` (``epoch``, ``best_miou``, ``best_epoch``,
    ``bad_epochs``, ``nan_skipped``, ``history``); ``is_main``: rank 0 (the one that writes).
    """

    cfg: Any
    run_dir: Path
    state: Any
    is_main: bool

    def log(self, msg: str) -> None: ...

    def checkpoint_payload(
        self, metrics: Mapping[str, Any], *, with_resume: bool
    ) -> dict[str, Any]: ...

    def save_last(self, payload: dict[str, Any]) -> None: ...

    def request_stop(self, reason: str, message: str) -> None: ...


class Callback:
    """Hooks of the training loop; subclass and override what you need (all no-ops here).

    ``terms`` are the step's loss terms by name as device tensors: reading one (``float()``)
    costs a device sync per step, so a logger should accumulate them on the device or read only
    every few steps. ``row`` is the epoch's ``metrics.csv`` row.

    A callback with state that must survive ``--resume`` returns it from :meth:`state_dict`
    (plain values and tensors: ``last.pt`` is read with ``weights_only=True``); the loop stores
    it in ``last.pt`` under ``resume.callbacks[state_key]`` and hands it back through
    :meth:`load_state_dict` on resume.
    """

    @property
    def state_key(self) -> str:
        """The name this callback's state is saved under (its class name by default)."""
        return type(self).__qualname__

    def on_train_start(self, step: Any) -> None:
        """Once, after the models and optimisers exist (e.g. to register forward hooks); ``step``
        is the run's :class:`~medspikeformer.engine.step.TrainingStep`."""

    def on_fit_start(self, loop: Loop) -> None:
        """Once, after set-up (and resume), before the first epoch."""

    def on_step_end(self, index: int, terms: Mapping[str, torch.Tensor]) -> None:
        """After each applied optimiser step (gradients are still in ``.grad``)."""

    def on_validation_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """After each epoch's validation, with its ``val_*`` metrics."""

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        """After each epoch's validation, with its metrics row."""

    def on_fit_end(self, summary: Mapping[str, Any]) -> None:
        """Once, after the last epoch, with the run's summary (what ``summary.json`` holds)."""

    def on_train_end(self, summary: Mapping[str, Any]) -> None:
        """Once, after every callback's :meth:`on_fit_end`; where a logger flushes and closes
        its files."""

    def state_dict(self) -> dict[str, Any]:
        """State to keep across ``--resume`` (empty: nothing is saved)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (called on resume when ``last.pt`` holds a state)."""
