"""Evaluation with the paper's metrics (Sec. 4.1): one global confusion matrix over the set →
mIoU, DSC, Acc, Spe, Sen; plus per-image Dice and IoU (``medspikeformer.metrics``).

``evaluate`` runs the model's eval forward on every image (optionally with flip test-time
augmentation, :func:`~medspikeformer.inference.sliding.forward_probs`), feeds ``sigmoid`` probabilities
(softmax for a K-class model) to :class:`~medspikeformer.metrics.SegmentationMetrics` and returns an :class:`EvalResult` that
writes the per-image CSV, the summary JSON and a markdown table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medspikeformer.inference.sliding import forward_probs
from medspikeformer.models import module_facts
from medspikeformer.outputs import atomic_write_text
from medspikeformer.runtime import (
    progress_enabled,
    resolve_device,  # re-exported: the public inference name
)

__all__ = [
    "GLOBAL_METRICS",
    "METRIC_LABELS",
    "RESOLUTIONS",
    "EvalResult",
    "evaluate",
    "resolve_device",
]

#: The five global metrics of Sec. 4.1, then the per-image means.
GLOBAL_METRICS = ("miou", "dsc", "acc", "spe", "sen")
MEAN_METRICS = ("mean_dice", "mean_iou")
#: Display names of the metrics (tables, the evaluate command).
METRIC_LABELS = {
    "miou": "mIoU",
    "dsc": "DSC",
    "acc": "Acc",
    "spe": "Spe",
    "sen": "Sen",
    "mean_dice": "mean Dice (per image)",
    "mean_iou": "mean IoU (per image)",
    "hd95": "HD95 (mean)",
    "hd95_median": "HD95 (median)",
    "nsd": "NSD at τ = 2 (mean)",
    "nsd_median": "NSD at τ = 2 (median)",
}
BOUNDARY_METRICS = ("hd95", "hd95_median", "nsd", "nsd_median")
#: ``evaluate``'s choices of where masks are scored: each image's own size (default) or the
#: training size the model sees.
RESOLUTIONS = ("native", "training")
RESOLUTION_LABELS = {
    "native": "native (each image's own size; 3-D data per case)",
    "training": "training size (the masks the model sees, per image/slice)",
}


def boundary_label(key: str, unit: str, per: str) -> str:
    """``HD95 (px, mean per image)``, ``NSD at 2 mm (mean per case)`` …"""
    if key == "hd95":
        return f"HD95 ({unit}, mean per {per})"
    if key == "hd95_median":
        return f"HD95 ({unit}, median per {per})"
    if key == "nsd_median":
        return f"NSD at 2 {unit} (median per {per})"
    return f"NSD at 2 {unit} (mean per {per})"


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    Attributes:
        metrics: ``miou, dsc, acc, spe, sen, mean_dice, mean_iou`` (floats), the global confusion
            counts ``tp, fp, fn, tn`` and ``num_images``.
        per_image: one dict per image, in data order: ``id, dice, iou, tp, fp, fn, tn``.
        threshold: the probability threshold used (``prob >= threshold`` is foreground).
        tta_flip: whether flip test-time augmentation was used.
        info: free-form provenance (checkpoint, dataset, split, size …) copied into the JSON.
        samples: the first few ``(image [C,H,W], mask [1,H,W], probs [1,H,W], id)`` kept for
            pictures (``keep_samples``).
    """

    metrics: dict[str, Any]
    per_image: list[dict[str, Any]]
    threshold: float
    tta_flip: bool
    info: dict[str, Any] = field(default_factory=dict)
    samples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]] = field(
        default_factory=list, repr=False
    )
    #: where the masks were scored (:data:`RESOLUTIONS`)
    resolution: str = "training"
    #: one row per ``image`` or per 3-D ``case``
    per: str = "image"
    #: unit of HD95 / NSD's tolerance: ``px`` (spacing 1) or ``mm`` (NIfTI voxel spacing)
    boundary_unit: str = "px"
    #: post-processing applied before scoring (``largest_component``), empty when none
    postprocessing: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary (where it was scored, metrics, threshold, TTA flag, info)."""
        return {
            "resolution": self.resolution,
            "scored_per": self.per,
            "boundary_unit": self.boundary_unit,
            "postprocessing": self.postprocessing,
            "metrics": {k: self.metrics[k] for k in self.metrics},
            "threshold": self.threshold,
            "tta_flip": self.tta_flip,
            **({"info": self.info} if self.info else {}),
        }

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`summary` as indented JSON."""
        return atomic_write_text(path, json.dumps(self.summary(), indent=2, sort_keys=False) + "\n")

    @property
    def class_names(self) -> list[str]:
        """The per-class names of a K-class evaluation (empty for a binary one)."""
        return [k[len("dsc_") :] for k in self.metrics if k.startswith("dsc_")]

    def to_csv(self, path: str | Path) -> Path:
        """Write the per-image rows (``id, dice, iou, tp, fp, fn, tn``; K classes: then
        ``dice_<name>, iou_<name>`` per class) as CSV."""
        columns = ["id", "dice", "iou", "tp", "fp", "fn", "tn"]
        if self.per_image and "hd95" in self.per_image[0]:
            columns += ["hd95", "nsd"]  # empty where undefined (exactly one mask empty)
        columns += ["resolution"]
        if self.per_image and "size" in self.per_image[0]:
            columns += ["size", "spacing"]
        for name in self.class_names:
            columns += [f"dice_{name}", f"iou_{name}"]
            if self.per_image and f"hd95_{name}" in self.per_image[0]:
                columns += [f"hd95_{name}", f"nsd_{name}"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in self.per_image:
            row = {**row, "resolution": self.resolution}
            writer.writerow(
                {
                    k: (
                        f"{row[k]:.6f}"
                        if isinstance(row[k], float)
                        else ("" if row[k] is None else row[k])
                    )
                    for k in columns
                }
            )
        return atomic_write_text(path, buffer.getvalue())

    def to_markdown(self) -> str:
        """A markdown report: the global metrics table, settings and the five worst images."""
        lines = ["# Evaluation", ""]
        lines.append(f"- **scored at**: {RESOLUTION_LABELS[self.resolution]}")
        for key, value in self.info.items():
            lines.append(f"- **{key}**: {value}")
        lines.append(f"- **threshold**: {self.threshold}")
        lines.append(f"- **flip TTA**: {'yes' if self.tta_flip else 'no'}")
        if self.postprocessing:
            lines.append(f"- **post-processing**: {', '.join(self.postprocessing)}")
        count = self.metrics.get("num_images", len(self.per_image))
        lines.append(f"- **{'cases' if self.per == 'case' else 'images'}**: {count}")
        lines += ["", f"| metric ({self.resolution}) | value |", "|---|---|"]
        for key in (*GLOBAL_METRICS, *MEAN_METRICS):
            if self.metrics.get(key) is not None:
                label = METRIC_LABELS[key].replace("per image", f"per {self.per}")
                lines.append(f"| {label} | {self.metrics[key]:.4f} |")
        for key in BOUNDARY_METRICS:
            if self.metrics.get(key) is not None:
                label = boundary_label(key, self.boundary_unit, self.per)
                lines.append(f"| {label} | {self.metrics[key]:.4f} |")
        if self.metrics.get("boundary_undefined"):
            lines.append(
                f"\nHD95 and NSD leave out {self.metrics['boundary_undefined']} {self.per}(s) "
                "where exactly one of prediction and truth is empty (undefined)."
            )
        if self.class_names:
            lines += [
                "",
                "Per class (one-vs-rest global confusion matrix; the means above leave "
                "out the background):",
                "",
            ]
            extra = [k for k in ("hd95", "nsd") if f"{k}_{self.class_names[-1]}" in self.metrics]
            heads = [METRIC_LABELS[k] for k in GLOBAL_METRICS]
            heads += [boundary_label(k, self.boundary_unit, self.per) for k in extra]
            lines += ["| class | " + " | ".join(heads) + " |"]
            lines += ["|---" * (len(heads) + 1) + "|"]
            for name in self.class_names:
                values = [self.metrics.get(f"{k}_{name}") for k in (*GLOBAL_METRICS, *extra)]
                cells = " | ".join("—" if v is None else f"{v:.4f}" for v in values)
                lines.append(f"| {name} | {cells} |")
        worst = sorted(self.per_image, key=lambda r: r["dice"])[:5]
        if worst:
            lines += [
                "",
                f"Lowest per-{self.per} Dice:",
                "",
                "| id | Dice | IoU |",
                "|---|---|---|",
            ]
            lines += [f"| {r['id']} | {r['dice']:.4f} | {r['iou']:.4f} |" for r in worst]
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``per_image.csv``, ``summary.json`` and ``summary.md`` into ``out_dir``."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md = atomic_write_text(out_dir / "summary.md", self.to_markdown())
        return {
            "csv": self.to_csv(out_dir / "per_image.csv"),
            "json": self.to_json(out_dir / "summary.json"),
            "markdown": md,
        }


def _as_loader(data: Dataset | DataLoader | Iterable, batch_size: int, num_workers: int):
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset):
        return DataLoader(
            data, batch_size=batch_size, shuffle=False, num_workers=num_workers, drop_last=False
        )
    return data


def _batch_ids(batch: dict[str, Any], start: int, n: int) -> list[str]:
    ids = batch.get("id")
    if ids is None:
        return [str(start + i) for i in range(n)]
    if isinstance(ids, str):
        ids = [ids]
    return [str(i) for i in ids]


def _native_dataset(data: Any) -> Any:
    """The dataset whose files give native-size masks: a ``SegmentationDataset`` or an
    in-order ``DataLoader`` of one; ``None`` for anything else."""
    from torch.utils.data import SequentialSampler

    from medspikeformer.data.base import SegmentationDataset

    if isinstance(data, SegmentationDataset):
        return data
    if (
        isinstance(data, DataLoader)
        and isinstance(data.dataset, SegmentationDataset)
        and isinstance(data.sampler, SequentialSampler)
    ):
        return data.dataset
    return None


def _largest_component_planes(
    probs: torch.Tensor, k: int, activation: str, threshold: float
) -> torch.Tensor:
    """``[K, H, W]`` probabilities → the post-processed labels as ``{0, 1}`` planes."""
    from medspikeformer.inference.postprocess import largest_component_labels
    from medspikeformer.inference.resample import label_planes
    from medspikeformer.inference.sliding import label_image

    labels = label_image(probs.float().cpu(), activation, threshold).numpy()
    kept = largest_component_labels(labels, k, activation)
    return torch.from_numpy(label_planes(kept, k, activation))


def evaluate(
    model: nn.Module,
    dataset_or_loader: Dataset | DataLoader | Iterable[dict[str, Any]],
    threshold: float = 0.5,
    tta_flip: bool = False,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    num_workers: int = 0,
    keep_samples: int = 0,
    progress: bool = False,
    info: dict[str, Any] | None = None,
    precision: str = "fp32",
    class_names: list[str] | None = None,
    boundary: bool = True,
    resolution: str | None = None,
    largest_component: bool = False,
) -> EvalResult:
    """Evaluate ``model`` on a dataset (items ``{"image", "mask", "id"}``) or a loader of batches.

    Args:
        model: a segmentation model (eval forward → logits ``[B,1,H,W]``); put in eval mode here.
        dataset_or_loader: a ``Dataset`` (wrapped in an ordered ``DataLoader`` of ``batch_size``),
            a ``DataLoader`` or any iterable of collated batches.
        threshold: foreground where ``sigmoid(logit) >= threshold``.
        tta_flip: average the probabilities of identity, h-flip and v-flip.
        device: ``None``/``"auto"`` picks CUDA when available.
        keep_samples: keep the first ``k`` (image, mask, probs, id) for pictures.
        progress: show a progress bar.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (bf16 on CUDA): the autocast of the
            forward passes; probabilities and metrics are computed in float32.
        class_names: names of a K-class model's channels (``data.labels``) for the per-class
            metrics; default ``class0`` … .
        boundary: HD95 and normalised surface Dice per image (or case; K classes: per scored
            class and their mean), in pixels or the volume's voxel spacing
            (:mod:`medspikeformer.metrics.boundary`), their mean and median in the metrics.
        resolution: ``"native"``: each prediction resized back to its image's own size and
            scored against the mask read at that size, 3-D data per case
            (:mod:`medspikeformer.inference.native`; needs a ``SegmentationDataset`` or an
            in-order loader of one); ``"training"``: the masks at the size the model sees;
            ``None``: native when the data allows it, else training.
        largest_component: keep each foreground class's largest connected component of the
            prediction before scoring (:mod:`medspikeformer.inference.postprocess`).

    Returns:
        :class:`EvalResult` with the global metrics and the per-image rows.
    """
    from medspikeformer.errors import ConfigError
    from medspikeformer.inference.native import NativeScorer
    from medspikeformer.inference.resample import label_planes, truth_planes
    from medspikeformer.inference.sliding import activation_of, label_image
    from medspikeformer.metrics import SegmentationMetrics
    from medspikeformer.metrics.boundary import boundary_row, summarise_boundary_rows
    from medspikeformer.precision import autocast

    if resolution not in (None, *RESOLUTIONS):
        raise ConfigError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
    native_ds = _native_dataset(dataset_or_loader)
    if resolution == "native" and native_ds is None:
        raise ConfigError(
            "native-resolution scores need a SegmentationDataset (or an in-order DataLoader of "
            "one) to read each mask at its own size; pass resolution='training' otherwise"
        )
    resolution = resolution or ("native" if native_ds is not None else "training")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    k = module_facts(model).num_classes
    activation = activation_of(model)
    metrics = SegmentationMetrics(
        threshold,
        **(
            {"num_classes": k, "multilabel": model.multilabel, "class_names": class_names}
            if k > 1
            else {}
        ),
    )
    native = None
    if resolution == "native":
        native = NativeScorer(
            native_ds,
            metrics,
            class_names=metrics.class_names if k > 1 else None,
            num_classes=k,
            activation=activation,
            threshold=threshold,
            boundary=boundary,
            largest_component=largest_component,
        )
    loader = _as_loader(dataset_or_loader, batch_size, num_workers)
    samples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]] = []
    boundaries: list[dict[str, float | None]] = []
    total = len(loader) if hasattr(loader, "__len__") else None
    iterator: Iterable[dict[str, Any]] = loader
    if progress_enabled(progress):
        from tqdm.auto import tqdm

        iterator = tqdm(loader, total=total, desc="evaluate", unit="batch", leave=False)
    seen = 0
    with torch.inference_mode():
        for batch in iterator:
            images = batch["image"].to(dev, non_blocking=True).float()
            masks = batch["mask"].to(dev, non_blocking=True).float()
            if images.dim() == 3:
                images, masks = images.unsqueeze(0), masks.unsqueeze(0)
            with autocast(dev, precision):
                probs = forward_probs(model, images, tta_flip=tta_flip)
            if k == 1 and probs.shape != masks.shape:
                raise ValueError(
                    f"model output {tuple(probs.shape)} does not match masks {tuple(masks.shape)}"
                )
            ids = _batch_ids(batch, seen, images.shape[0])
            if native is not None:
                for i in range(images.shape[0]):
                    native.add(seen + i, probs[i].float().cpu())
            else:
                scored = probs
                if largest_component:  # the labels, post-processed, as hard probabilities
                    scored = torch.stack(
                        [_largest_component_planes(p, k, activation, threshold) for p in probs]
                    ).to(probs.device)
                metrics.update(scored, masks, ids)
                if boundary:  # outline distances of each mask pair (per class for K)
                    for p, t in zip(scored, masks, strict=True):
                        planes = label_planes(
                            label_image(p.float().cpu(), activation, threshold).numpy(),
                            k,
                            activation,
                        )
                        boundaries.append(
                            boundary_row(
                                planes > 0,
                                truth_planes(t.cpu().numpy(), k, activation),
                                metrics.scored,
                                metrics.class_names if k > 1 else None,
                            )
                        )
            for i in range(images.shape[0]):
                if len(samples) >= keep_samples:
                    break
                samples.append((images[i].cpu(), masks[i].cpu(), probs[i].cpu(), ids[i]))
            seen += images.shape[0]
    if native is not None:
        native.finish()
    values = metrics.compute()
    rows = metrics.per_image()
    if native is not None:
        boundaries = [native.boundaries[row["id"]] for row in rows] if native.boundary else []
        for row in rows:
            row.update(native.extra[row["id"]])
    if boundaries:
        for row, scores in zip(rows, boundaries, strict=True):
            row.update(scores)
        values.update(summarise_boundary_rows(boundaries))
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            values[key] = None
    return EvalResult(
        metrics=dict(values),
        per_image=rows,
        threshold=float(threshold),
        tta_flip=bool(tta_flip),
        info=dict(info or {}),
        samples=samples,
        resolution=resolution,
        per=native.per if native is not None else "image",
        boundary_unit=native.unit if native is not None else "px",
        postprocessing=["largest connected component per class"] if largest_component else [],
    )
