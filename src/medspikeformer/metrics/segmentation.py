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

**K > 1 channels** (``num_classes``; ``docs/metrics.md``, "Multi-class"): one one-vs-rest
matrix ``TP, FP, FN, TN`` per class, accumulated over the set the same way; the five metrics per
class (``dsc_<name>`` …) from each class's matrix, and ``miou``, ``dsc``, ``acc``, ``spe``,
``sen`` as the **mean over the classes scored**: by default every class but the background
(class 0 of a softmax model; a multi-label model has no background channel), because the
background's near-perfect figures would lift every mean. ``mean_dice`` / ``mean_iou`` average
per image the scored classes present in the target or the prediction (a class absent from
both would score 1 and lift the image's mean; an image with none of them scores 1). A softmax prediction is the argmax; a multi-label one
``prob >= threshold`` per channel. ``tp, fp, fn, tn`` are the sums over the scored classes.

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
    "mean_metrics",
    "metrics_from_confusion",
    "multiclass_confusion",
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


def multiclass_confusion(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image, per-class one-vs-rest counts of two boolean ``[B, K, ...]`` masks: int64
    ``[B, K, 4]`` (``TP, FP, FN, TN``)."""
    b, k = pred.shape[:2]
    counts = confusion_counts(pred.reshape(b * k, -1), target.reshape(b * k, -1))
    return counts.reshape(b, k, 4)


def mean_metrics(per_class: Sequence[dict[str, float]]) -> dict[str, float]:
    """The unweighted mean over classes of each metric of :func:`metrics_from_confusion`."""
    return {key: sum(m[key] for m in per_class) / len(per_class) for key in per_class[0]}


class SegmentationMetrics:
    """Accumulates the global confusion matrix and per-image counts over batches.

    Args:
        threshold: a pixel is predicted foreground when ``prob >= threshold`` (sigmoid heads).
        num_classes: K output channels (1 = binary, the default and the behaviour above).
        multilabel: K > 1 only: the channels are overlapping regions (sigmoid each; target
            ``[B, K, H, W]``) rather than softmax classes (target ``[B, 1, H, W]`` class ids).
        class_names: K names for the per-class keys (default ``class0`` … ``class{K−1}``).
        include_background: average class 0 of a softmax model into the means too (default
            false; no effect for binary and multi-label models).

    Example::

        metrics = SegmentationMetrics()
        for batch in loader:
            metrics.update(torch.sigmoid(model(batch["image"])), batch["mask"], batch["id"])
        print(metrics.compute())  # {"miou": ..., "dsc": ..., ..., "mean_dice": ..., "mean_iou": ...}
    """

    def __init__(
        self,
        threshold: float = 0.5,
        *,
        num_classes: int = 1,
        multilabel: bool = False,
        class_names: Sequence[str] | None = None,
        include_background: bool = False,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.threshold = float(threshold)
        self.num_classes = int(num_classes)
        self.multilabel = bool(multilabel)
        names = list(class_names) if class_names is not None else None
        if names is not None and len(names) != num_classes:
            raise ValueError(f"got {len(names)} class names for {num_classes} classes")
        self.class_names = names or [f"class{i}" for i in range(num_classes)]
        softmax = num_classes > 1 and not multilabel
        #: indices of the classes averaged into the means
        self.scored = list(range(1 if softmax and not include_background else 0, num_classes))
        self.reset()

    @property
    def _k(self) -> int:
        """Rows of the confusion matrix: 1 for a binary model (the foreground), K otherwise."""
        return 1 if self.num_classes == 1 else self.num_classes

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self._confusion = torch.zeros(self._k, 4, dtype=torch.int64)
        self._ids: list[str] = []
        self._rows: list[Tensor] = []  # int64 [B, K, 4] per update (K = 1: binary)
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
        if self.num_classes > 1:
            return self._update_multi(probs, target, ids)
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
        ids = self._batch_ids(ids, probs.shape[0])
        counts = confusion_counts(probs >= self.threshold, target >= 0.5).cpu()
        self._add(counts[:, None], ids)
        return counts

    def _batch_ids(self, ids: Sequence[str] | None, batch: int) -> list[str]:
        if ids is None:
            return [str(self._count + i) for i in range(batch)]
        out = [str(i) for i in ids]
        if len(out) != batch:
            raise ValueError(f"got {len(out)} ids for a batch of {batch}")
        return out

    def _add(self, counts: Tensor, ids: list[str]) -> None:
        """Accumulate int64 ``[B, K, 4]`` counts."""
        self._confusion += counts.sum(0)
        self._rows.append(counts)
        self._ids.extend(ids)
        self._count += counts.shape[0]

    def _update_multi(self, probs: Tensor, target: Tensor, ids: Sequence[str] | None) -> Tensor:
        """K > 1: ``probs [B, K, H, W]``; target class ids ``[B, 1, H, W]`` (softmax) or
        ``[B, K, H, W]`` in {0, 1} (multi-label). Returns int64 ``[B, K, 4]``."""
        k = self.num_classes
        if probs.dim() != 4 or probs.shape[1] != k:
            raise ValueError(f"expected probs [B, {k}, H, W], got {tuple(probs.shape)}")
        want = (probs.shape[0], k if self.multilabel else 1, *probs.shape[2:])
        if tuple(target.shape) != want:
            raise ValueError(f"expected target {list(want)}, got {tuple(target.shape)}")
        if probs.is_floating_point() and (
            probs.isnan().any() or float(probs.min()) < 0.0 or float(probs.max()) > 1.0
        ):
            raise ValueError(
                "probs must be probabilities in [0, 1]; apply the model's activation (softmax "
                "over the classes, or sigmoid for multi-label regions) to its logits"
            )
        if self.multilabel:
            pred, truth = probs >= self.threshold, target >= 0.5
        else:
            classes = torch.arange(k, device=probs.device).view(1, k, 1, 1)
            pred = probs.argmax(1, keepdim=True) == classes
            truth = target.round().long() == classes
        counts = multiclass_confusion(pred, truth).cpu()
        self._add(counts, self._batch_ids(ids, probs.shape[0]))
        return counts

    def _per_image_counts(self) -> Tensor:
        """int64 ``[N, K, 4]`` (K = 1 for a binary model)."""
        if not self._rows:
            return torch.zeros(0, self._k, 4, dtype=torch.int64)
        return torch.cat(self._rows)

    def confusion(self) -> dict[str, int]:
        """The global confusion matrix ``{"tp", "fp", "fn", "tn"}`` (K > 1: summed over the
        scored classes; :meth:`class_confusion` has each class's)."""
        conf = self._confusion if self.num_classes == 1 else self._confusion[self.scored]
        return {k: int(v) for k, v in zip(_KEYS, conf.sum(0).tolist())}

    def class_confusion(self) -> dict[str, dict[str, int]]:
        """Each class's one-vs-rest matrix by class name (binary: the one foreground)."""
        names = self.class_names if self.num_classes > 1 else ["foreground"]
        return {
            name: {k: int(v) for k, v in zip(_KEYS, row)}
            for name, row in zip(names, self._confusion.tolist())
        }

    def per_image(self) -> list[dict[str, Any]]:
        """One row per image: ``id, dice, iou, tp, fp, fn, tn`` in update order; for K > 1
        ``dice``/``iou`` are means over the scored classes, the counts their sums, and
        ``dice_<name>`` / ``iou_<name>`` follow per class."""
        if self.num_classes > 1:
            return self._per_image_multi()
        rows = []
        for image_id, ((tp, fp, fn, tn),) in zip(self._ids, self._per_image_counts().tolist()):
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

    def _per_image_multi(self) -> list[dict[str, Any]]:
        rows = []
        for image_id, per_class in zip(self._ids, self._per_image_counts().tolist()):
            dice = [dice_from_counts(tp, fp, fn) for tp, fp, fn, _ in per_class]
            iou = [iou_from_counts(tp, fp, fn) for tp, fp, fn, _ in per_class]
            sums = [sum(per_class[c][j] for c in self.scored) for j in range(4)]
            # Classes absent from both target and prediction would score 1 and lift every
            # image's mean; they are left out (an image with none of them scores 1).
            seen = [c for c in self.scored if sum(per_class[c][:3]) > 0]
            row: dict[str, Any] = {
                "id": image_id,
                "dice": sum(dice[c] for c in seen) / len(seen) if seen else 1.0,
                "iou": sum(iou[c] for c in seen) / len(seen) if seen else 1.0,
                **dict(zip(_KEYS, sums)),
            }
            for c, name in enumerate(self.class_names):
                row[f"dice_{name}"] = dice[c]
                row[f"iou_{name}"] = iou[c]
            rows.append(row)
        return rows

    def compute(self) -> dict[str, float | int]:
        """``miou, dsc, acc, spe, sen`` (global matrix), ``mean_dice, mean_iou`` (per image),
        the counts ``tp, fp, fn, tn`` and ``num_images``. K > 1: the five metrics are means over
        the scored classes and each class's follow as ``<metric>_<name>``."""
        if self._count == 0:
            raise DataError("no images were accumulated: the evaluation set is empty")
        if self.num_classes > 1:
            return self._compute_multi()
        conf = self.confusion()
        result: dict[str, float | int] = dict(metrics_from_confusion(**conf))
        rows = self.per_image()
        result["mean_dice"] = sum(r["dice"] for r in rows) / len(rows)
        result["mean_iou"] = sum(r["iou"] for r in rows) / len(rows)
        result.update(conf)
        result["num_images"] = self._count
        return result

    def _compute_multi(self) -> dict[str, float | int]:
        per_class = [metrics_from_confusion(**c) for c in self.class_confusion().values()]
        result: dict[str, float | int] = dict(mean_metrics([per_class[c] for c in self.scored]))
        rows = self.per_image()
        result["mean_dice"] = sum(r["dice"] for r in rows) / len(rows)
        result["mean_iou"] = sum(r["iou"] for r in rows) / len(rows)
        for name, values in zip(self.class_names, per_class):
            for key, value in values.items():
                result[f"{key}_{name}"] = value
        result.update(self.confusion())
        result["num_images"] = self._count
        return result

    # ---------------------------------------------------------------- merging across processes
    def state(self) -> dict[str, Any]:
        """A picklable snapshot: ``{"confusion": int64[4], "counts": int64[N, 4], "ids": [...]}``
        (K > 1: ``[K, 4]`` and ``[N, K, 4]``)."""
        squeeze = self.num_classes == 1
        counts = self._per_image_counts()
        return {
            "confusion": self._confusion[0].clone() if squeeze else self._confusion.clone(),
            "counts": counts[:, 0] if squeeze else counts,
            "ids": list(self._ids),
        }

    def merge(self, state: dict[str, Any]) -> None:
        """Add another accumulator's :meth:`state` (e.g. from another rank) to this one."""
        counts = torch.as_tensor(state["counts"], dtype=torch.int64).reshape(-1, self._k, 4)
        ids = list(state["ids"])
        if len(ids) != counts.shape[0]:
            raise ValueError(f"state has {len(ids)} ids but {counts.shape[0]} count rows")
        self._confusion += torch.as_tensor(state["confusion"], dtype=torch.int64).reshape(
            self._k, 4
        )
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
            counts = torch.as_tensor(part["counts"], dtype=torch.int64).reshape(-1, self._k, 4)
            if counts.shape[0]:
                self._rows.append(counts)
            self._ids.extend(part["ids"])
            self._count += counts.shape[0]
