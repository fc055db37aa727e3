"""The model contract every registered model follows: :class:`SegmentationModel`.

Code outside ``models/`` (trainer, inference, profiler, experiments) reads these attributes
directly; a new model subclasses this base, sets the attributes in ``__init__`` and implements
:meth:`SegmentationModel.forward_all` (``forward`` is derived from it unless overridden for speed).

=================  ======================================================================
``model_name``     registry name (``create_model`` sets it to the name it was built under)
``config``         JSON-serialisable constructor options: ``create_model(name, **config)``
                   rebuilds the same architecture
``in_channels``    input channels C_in
``size_divisor``   H and W of an input must be multiples of it
``timesteps``      simulation steps T (1 for non-spiking models)
``is_spiking``     whether the model computes with spiking neurons
=================  ======================================================================
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medspikeformer.errors import ConfigError
from medspikeformer.models.output import SegmentationOutput

__all__ = ["SegmentationModel"]


class SegmentationModel(nn.Module):
    """Base of every binary-segmentation model of the package.

    * ``forward(x [B, C_in, H, W])`` → logits ``[B, 1, H, W]`` in every mode (train and eval);
    * ``forward_all(x)`` → :class:`SegmentationOutput` (logits, stage logits — empty for models
      without stage heads — and attention maps or ``None``) in every mode;
    * ``twin_config()`` → the ``create_model("ann", **cfg)`` options of the model's ANN teacher
      twin, or ``None`` when it has none;
    * ``check_input(x)`` raises :class:`~medspikeformer.errors.ConfigError` naming the model.

    Subclasses set the contract attributes (module docstring) before the first forward.
    """

    model_name: str
    config: dict[str, Any]
    in_channels: int
    size_divisor: int
    timesteps: int
    is_spiking: bool
    #: Appended to the divisibility error after the divisor (e.g. how the divisor arises).
    divisor_hint: str = ""

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ConfigError`` unless ``x`` is ``[B, in_channels, H, W]`` with H, W divisible
        by ``size_divisor``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"{self.model_name}: expected input [B, {self.in_channels}, H, W], "
                f"got {list(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise ConfigError(
                f"{self.model_name}: input size {h}×{w} is not divisible by "
                f"{self.size_divisor}{self.divisor_hint}; pad or resize the image"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, 1, H, W]`` of ``x [B, C_in, H, W]``, in every mode."""
        return self.forward_all(x).logits

    def forward_all(self, x: torch.Tensor, *, attention: bool = True) -> SegmentationOutput:
        """Logits, stage logits and attention maps of ``x [B, C_in, H, W]``, in every mode.

        ``attention=False`` lets a model skip its attention maps (``None``) when a caller needs
        only the logits and stage logits (the trainer).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward_all")

    def twin_config(self) -> dict[str, Any] | None:
        """Options of this model's ANN teacher twin (``create_model("ann", **options)``), or
        ``None`` when it has no twin (the default)."""
        return None
