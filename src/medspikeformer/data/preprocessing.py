"""The preprocessing policy: how an image became a model input in training.

Every checkpoint the trainer writes records it (``"preprocessing"``), so that ``predict`` and
``explain`` repeat what training did by default instead of guessing (docs/inference.md,
"Preprocessing policy"). Modes:

- ``resize``: the whole image resized to ``size`` (:func:`~medspikeformer.data.resize_image`:
  area when shrinking, bilinear when enlarging), then ``to_model_input`` (``x / 255``, grey
  replicated or RGB → luminance for ``in_channels``). What :class:`SegmentationDataset` does for
  every dataset in this package.
- ``sliding``: windows of ``size`` over the image at its own resolution (for a model trained on
  native-resolution patches; no dataset here trains that way, but ``predict --mode sliding`` runs
  it for very large images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medspikeformer.errors import CheckpointError, ConfigError

from .base import parse_size

__all__ = ["POLICY_MODES", "PreprocessingPolicy", "training_policy"]

POLICY_MODES = ("resize", "sliding")
#: Written beside the policy so that a later change of the rule can be told apart.
POLICY_VERSION = 1


@dataclass(frozen=True)
class PreprocessingPolicy:
    """``mode`` (:data:`POLICY_MODES`), ``size = (H, W)`` and the model's ``in_channels``."""

    mode: str
    size: tuple[int, int]
    in_channels: int

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint entry (plain values, ``weights_only``-loadable)."""
        return {
            "version": POLICY_VERSION,
            "mode": self.mode,
            "size": [int(self.size[0]), int(self.size[1])],
            "in_channels": int(self.in_channels),
            "resize": "area when shrinking, else bilinear",
            "scale": "uint8 / 255",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "checkpoint") -> PreprocessingPolicy:
        """Read a checkpoint entry back; a malformed one → ``CheckpointError`` naming ``where``."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{where}: preprocessing policy is not a mapping")
        mode = data.get("mode")
        if mode not in POLICY_MODES:
            raise CheckpointError(
                f"{where}: preprocessing mode {mode!r} is not one of {', '.join(POLICY_MODES)}"
            )
        try:
            size = parse_size(data.get("size"), where=f"{where}: preprocessing size")
        except ConfigError as exc:
            raise CheckpointError(str(exc)) from None
        channels = data.get("in_channels")
        if channels not in (1, 3):
            raise CheckpointError(f"{where}: preprocessing in_channels {channels!r} is not 1 or 3")
        return cls(mode=str(mode), size=size, in_channels=int(channels))

    def describe(self) -> str:
        """``whole images resized to 256×256`` / ``256×256 windows at the image's own resolution``."""
        h, w = self.size
        if self.mode == "resize":
            return f"whole images resized to {h}×{w}"
        return f"{h}×{w} windows at the image's own resolution"


def training_policy(size: int | Sequence[int], in_channels: int) -> PreprocessingPolicy:
    """The policy of training with this package's datasets: every pair resized to ``size``."""
    return PreprocessingPolicy(mode="resize", size=parse_size(size), in_channels=int(in_channels))
