"""The one place a run's metrics accumulator is built from its model and config."""

from __future__ import annotations

from typing import Any

from medspikeformer.engine.config import TrainConfig, label_spec
from medspikeformer.metrics import SegmentationMetrics
from medspikeformer.models import SegmentationModel

__all__ = ["class_names", "metrics_for"]


def class_names(model: SegmentationModel, config: TrainConfig | None) -> list[str] | None:
    """The K channel names of ``data.labels`` (``class0`` … when the config names none);
    ``None`` for a binary model."""
    if model.num_classes == 1:
        return None
    spec = label_spec(config) if config is not None else None
    if spec is not None and spec.num_classes == model.num_classes:
        return list(spec.names)
    return [f"class{i}" for i in range(model.num_classes)]


def metrics_for(
    model: SegmentationModel, config: TrainConfig | None, threshold: float | None = None, **kw: Any
) -> SegmentationMetrics:
    """``SegmentationMetrics`` for ``model``'s K channels and activation, with the class names of
    ``config.data.labels``; ``threshold`` defaults to ``train.threshold``."""
    if threshold is None:
        threshold = config.train.threshold if config is not None else 0.5
    if model.num_classes == 1:
        return SegmentationMetrics(threshold)
    return SegmentationMetrics(
        threshold,
        num_classes=model.num_classes,
        multilabel=model.multilabel,
        class_names=class_names(model, config),
        **kw,
    )
