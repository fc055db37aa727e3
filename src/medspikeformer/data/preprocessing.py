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

Volumes also record their ``intensity``: how voxel values became 0…255 before ``x / 255`` —
``{"window": [lo, hi]}`` (a fixed window, e.g. the CT lung window) or ``{"window": "percentile",
"range": [0.5, 99.5]}`` (each case's own percentile range, the Decathlon reader's default). A
NIfTI ``predict`` repeats it, and a ``--ct-window`` that departs from it is one warning line.
8-bit images have none (``None``).
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
    intensity: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint entry (plain values, ``weights_only``-loadable)."""
        out = {
            "version": POLICY_VERSION,
            "mode": self.mode,
            "size": [int(self.size[0]), int(self.size[1])],
            "in_channels": int(self.in_channels),
            "resize": "area when shrinking, else bilinear",
            "scale": "uint8 / 255",
        }
        if self.intensity is not None:
            out["intensity"] = dict(self.intensity)
        return out

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
        intensity = data.get("intensity")
        if intensity is not None:
            intensity = check_intensity(intensity, where)
        return cls(mode=str(mode), size=size, in_channels=int(channels), intensity=intensity)

    def percentile_range(self) -> tuple[float, float] | None:
        """The per-case percentile range a volume was windowed to, if that was the rule."""
        if self.intensity is not None and self.intensity.get("window") == "percentile":
            lo, hi = self.intensity["range"]
            return float(lo), float(hi)
        return None

    def fixed_window(self) -> tuple[float, float] | None:
        """The fixed intensity window volumes were trained with, if that was the rule."""
        window = None if self.intensity is None else self.intensity.get("window")
        if isinstance(window, (list, tuple)):
            return float(window[0]), float(window[1])
        return None

    def describe(self) -> str:
        """``whole images resized to 256×256`` / ``256×256 windows at the image's own resolution``."""
        h, w = self.size
        if self.mode == "resize":
            return f"whole images resized to {h}×{w}"
        return f"{h}×{w} windows at the image's own resolution"


def check_intensity(value: Any, where: str) -> dict[str, Any]:
    """A recorded ``intensity`` entry, checked; anything else → ``CheckpointError``."""
    import math

    def finite_pair(pair: Any) -> bool:
        return (
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in pair)
            and pair[1] > pair[0]
        )

    window = value.get("window") if isinstance(value, Mapping) else None
    if window == "percentile" and finite_pair(value.get("range")):
        return {"window": "percentile", "range": [float(v) for v in value["range"]]}
    if finite_pair(window):
        return {"window": [float(v) for v in window]}
    raise CheckpointError(
        f"{where}: preprocessing intensity {value!r} is neither {{window: [lo, hi]}} nor "
        "{window: percentile, range: [lo, hi]}"
    )


def training_policy(
    size: int | Sequence[int], in_channels: int, intensity: Mapping[str, Any] | None = None
) -> PreprocessingPolicy:
    """The policy of training with this package's datasets: every pair resized to ``size``;
    ``intensity``: the dataset's own rule for volumes (``DatasetSource.intensity``)."""
    return PreprocessingPolicy(
        mode="resize", size=parse_size(size), in_channels=int(in_channels), intensity=intensity
    )
