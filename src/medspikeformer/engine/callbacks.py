"""The hooks of the training loop (Lightning's callback idea): loggers and probes subclass
:class:`Callback`. Its own module so that a logger never imports the training step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["Callback"]


class Callback:
    """Hooks of the training loop; subclass and override what you need (all no-ops here).

    ``terms`` are the step's loss terms by name as device tensors: reading one (``float()``)
    costs a device sync per step, so a logger should accumulate them on the device or read only
    every few steps. ``row`` is the epoch's ``metrics.csv`` row.
    """

    def on_train_start(self, step: Any) -> None:
        """Once, after the models and optimisers exist (e.g. to register forward hooks); ``step``
        is the run's :class:`~medspikeformer.engine.step.TrainingStep`."""

    def on_step_end(self, index: int, terms: Mapping[str, torch.Tensor]) -> None:
        """After each applied optimiser step (gradients are still in ``.grad``)."""

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        """After each epoch's validation, with its metrics row."""

    def on_train_end(self, summary: Mapping[str, Any]) -> None:
        """Once, after the last epoch, with the run's summary (what ``summary.json`` holds);
        also where a logger flushes and closes its files."""
