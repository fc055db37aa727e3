"""Segmentation metrics: streaming global confusion matrix (mIoU, DSC, Acc, Spe, Sen) and
per-image Dice / IoU. Conventions in ``docs/metrics.md``."""

from __future__ import annotations

from medspikeformer.metrics.segmentation import (
    SegmentationMetrics,
    confusion_counts,
    dice_from_counts,
    iou_from_counts,
    mean_metrics,
    metrics_from_confusion,
    multiclass_confusion,
    safe_ratio,
)

__all__ = [
    "SegmentationMetrics",
    "confusion_counts",
    "dice_from_counts",
    "iou_from_counts",
    "mean_metrics",
    "metrics_from_confusion",
    "multiclass_confusion",
    "safe_ratio",
]
