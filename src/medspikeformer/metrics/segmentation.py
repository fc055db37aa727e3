"""Streaming binary-segmentation metrics (paper Sec. 4.1, VM-UNet / EGE-UNet evaluation protocol).

Probabilities are thresholded (``prob >= threshold``, default 0.5, as in the VM-UNet code) and
targets binarised at 0.5. One pixel confusion matrix ``TP, FP, FN, TN`` (int64) is accumulated over
the whole set; from it:

=========  =====================================  ==========================
metric     formula                                 zero-denominator value
=========  =====================================  ==========================
``miou``   TP / (TP + FP + FN)                     1.0 (nothing to find, nothing falsely found)
``dsc``    2TP / (2TP + FP + FN)                   1.0
``acc``    (TP + TN) / (TP + FP + FN + TN)         (never zero once a pixel was seen)
``spe``    TN / (TN + FP)                          1.0 (no background pixel in the set)
``sen``    TP / (TP + FN)                          1.0 (no foreground pixel in the set)
=========  =====================================  ==========================

``miou`` is the foreground IoU of the global matrix, exactly what the VM-UNet / EGE-UNet code calls
mIoU. A zero denominator means its numerator is zero too and no error of that kind was made, so the
value is 1.0 (the VM-UNet code returns 0 there, MONAI NaN; see ``docs/metrics.md``).

Per image (the polyp-segmentation convention) ``dice = 2TP/(2TP+FP+FN)`` and ``iou = TP/(TP+FP+FN)``
with the same rule: **both prediction and target empty → 1**, exactly one empty → 0 (follows from
the formula). ``mean_dice`` / ``mean_iou`` average these over images.

Distributed evaluation: :meth:`SegmentationMetrics.sync` all-reduces the confusion matrix and
all-gathers the per-image rows when ``torch.distributed`` is initialised;
:meth:`SegmentationMetrics.state` / :meth:`SegmentationMetrics.merge` do the same by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from medspikeformer.errors import DataError

__all__ = [
    "SegmentationMetrics",
    "confusion_counts",
    "dice_from_counts",
    "iou_from_counts",
    "metrics_from_confusion",
    "safe_ratio",
]

_KEYS = ("tp", "fp", "fn", "tn")


def safe_ratio(numerator: float, denominator: float, empty: float = 1.0) -> float:
    """``numerator / denominator``, or ``empty`` when the denominator is zero."""
    return float(numerator) / float(denominator) if denominator != 0 else float(empty)


def confusion_counts(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image confusion counts of two boolean masks.

    Args:
        pred, target: ``[B, ...]`` boolean.

    Returns:
        int64 ``[B, 4]`` with columns ``TP, FP, FN, TN``.
    """
    p = pred.reshape(pred.shape[0], -1)
    t = target.reshape(target.shape[0], -1)
    tp = (p & t).sum(1)
    fp = (p & ~t).sum(1)
    fn = (~p & t).sum(1)
    tn = p.shape[1] - tp - fp - fn
    return torch.stack([tp, fp, fn, tn], dim=1).to(torch.int64)


def dice_from_counts(tp: float, fp: float, fn: float) -> float:
    """``2TP / (2TP + FP + FN)``; 1.0 when prediction and target are both empty."""
    return safe_ratio(2 * tp, 2 * tp + fp + fn)


def iou_from_counts(tp: float, fp: float, fn: float) -> float:
    """``TP / (TP + FP + FN)``; 1.0 when prediction and target are both empty."""
    return safe_ratio(tp, tp + fp + fn)


def metrics_from_confusion(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """The five global metrics of Sec. 4.1 from one confusion matrix (see module docstring)."""
    return {
        "miou": iou_from_counts(tp, fp, fn),
        "dsc": dice_from_counts(tp, fp, fn),
        "acc": safe_ratio(tp + tn, tp + fp + fn + tn),
        "spe": safe_ratio(tn, tn + fp),
        "sen": safe_ratio(tp, tp + fn),
    }


class SegmentationMetrics:
    """Accumulates the global confusion matrix and per-image counts over batches.

    Args:
        threshold: a pixel is predicted foreground when ``prob >= threshold``.

    Example::

        metrics = SegmentationMetrics()
        for batch in loader:
            metrics.update(torch.sigmoid(model(batch["image"])), batch["mask"], batch["id"])
        print(metrics.compute())  # {"miou": ..., "dsc": ..., ..., "mean_dice": ..., "mean_iou": ...}
    """

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._confusion = torch.zeros(4, dtype=torch.int64)
        self._ids: list[str] = []
        self._rows: list[Tensor] = []  # int64 [B, 4] per update
        self._count = 0

    @property
    def num_images(self) -> int:
        return self._count

    @torch.no_grad()
    def update(self, probs: Tensor, target: Tensor, ids: Sequence[str] | None = None) -> Tensor:
        """Add one batch.

        Args:
            probs: ``[B, 1, H, W]`` foreground probabilities (``sigmoid(logits)``), in ``[0, 1]``.
            target: ``[B, 1, H, W]`` ground truth (binarised at 0.5).
            ids: optional ``B`` image ids; default ``"0", "1", ...`` in update order.

        Returns:
            the batch's int64 ``[B, 4]`` counts ``TP, FP, FN, TN``.
        """
        if probs.shape != target.shape:
            raise ValueError(
                f"probs {tuple(probs.shape)} and target {tuple(target.shape)} must have the same shape"
            )
        if probs.dim() != 4 or probs.shape[1] != 1:
            raise ValueError(f"expected [B, 1, H, W], got {tuple(probs.shape)}")
        if probs.is_floating_point():
            lo, hi = float(probs.min()), float(probs.max())
            if lo < 0.0 or hi > 1.0 or probs.isnan().any():
                raise ValueError(
                    f"probs must be probabilities in [0, 1] (got range [{lo:.3g}, {hi:.3g}]); "
                    "apply torch.sigmoid to the model's logits"
                )
        batch = probs.shape[0]
        if ids is None:
            ids = [str(self._count + i) for i in range(batch)]
        else:
            ids = [str(i) for i in ids]
            if len(ids) != batch:
                raise ValueError(f"got {len(ids)} ids for a batch of {batch}")
        counts = confusion_counts(probs >= self.threshold, target >= 0.5).cpu()
        self._confusion += counts.sum(0)
        self._rows.append(counts)
        self._ids.extend(ids)
        self._count += batch
        return counts

    def _per_image_counts(self) -> Tensor:
        if not self._rows:
            return torch.zeros(0, 4, dtype=torch.int64)
        return torch.cat(self._rows)

    def confusion(self) -> dict[str, int]:
        """The global confusion matrix ``{"tp", "fp", "fn", "tn"}``."""
        return {k: int(v) for k, v in zip(_KEYS, self._confusion.tolist())}

    def per_image(self) -> list[dict[str, Any]]:
        """One row per image: ``id, dice, iou, tp, fp, fn, tn`` in update order."""
        rows = []
        for image_id, (tp, fp, fn, tn) in zip(self._ids, self._per_image_counts().tolist()):
            rows.append(
                {
                    "id": image_id,
                    "dice": dice_from_counts(tp, fp, fn),
                    "iou": iou_from_counts(tp, fp, fn),
                    "tp": tp,
                    "fp": fp,
                    "fn": fn,
                    "tn": tn,
                }
            )
        return rows

    def compute(self) -> dict[str, float | int]:
        """``miou, dsc, acc, spe, sen`` (global matrix), ``mean_dice, mean_iou`` (per image),
        the counts ``tp, fp, fn, tn`` and ``num_images``."""
        if self._count == 0:
            raise DataError("no images were accumulated: the evaluation set is empty")
        conf = self.confusion()
        result: dict[str, float | int] = dict(metrics_from_confusion(**conf))
        rows = self.per_image()
        result["mean_dice"] = sum(r["dice"] for r in rows) / len(rows)
        result["mean_iou"] = sum(r["iou"] for r in rows) / len(rows)
        result.update(conf)
        result["num_images"] = self._count
        return result

    # ---------------------------------------------------------------- merging across processes
    def state(self) -> dict[str, Any]:
        """A picklable snapshot: ``{"confusion": int64[4], "counts": int64[N, 4], "ids": [...]}``."""
        return {
            "confusion": self._confusion.clone(),
            "counts": self._per_image_counts(),
            "ids": list(self._ids),
        }

    def merge(self, state: dict[str, Any]) -> None:
        """Add another accumulator's :meth:`state` (e.g. from another rank) to this one."""
        counts = torch.as_tensor(state["counts"], dtype=torch.int64).reshape(-1, 4)
        ids = list(state["ids"])
        if len(ids) != counts.shape[0]:
            raise ValueError(f"state has {len(ids)} ids but {counts.shape[0]} count rows")
        self._confusion += torch.as_tensor(state["confusion"], dtype=torch.int64)
        if counts.shape[0]:
            self._rows.append(counts)
        self._ids.extend(ids)
        self._count += counts.shape[0]

    def sync(self, group: Any = None) -> None:
        """Combine the accumulators of all ranks in place (every rank ends with the full set).

        No-op when ``torch.distributed`` is not initialised. The confusion matrix is summed with
        ``all_reduce`` (int64, exact); per-image rows are gathered in rank order. Call it once,
        after the last :meth:`update`.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size(group)
        if world == 1:
            return
        gathered: list[Any] = [None] * world
        dist.all_gather_object(
            gathered, {"counts": self._per_image_counts(), "ids": self._ids}, group
        )
        confusion = self._confusion.clone()
        backend = dist.get_backend(group)
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"
        confusion = confusion.to(device)
        dist.all_reduce(confusion, op=dist.ReduceOp.SUM, group=group)
        self._confusion = confusion.cpu()
        self._rows = []
        self._ids = []
        self._count = 0
        for part in gathered:
            counts = torch.as_tensor(part["counts"], dtype=torch.int64).reshape(-1, 4)
            if counts.shape[0]:
                self._rows.append(counts)
            self._ids.extend(part["ids"])
            self._count += counts.shape[0]
