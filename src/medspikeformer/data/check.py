"""Dataset validation behind ``medspikeformer data check`` and a PNG preview behind ``data show``.

Errors (exit status 1): missing pairs (image without mask or mask without image), empty or
unreadable/truncated files, image/mask size mismatches, masks that ``read_mask`` refuses (more
than two values that are not a near-binary 0/M mask — label ids, two colours neither black),
a split whose masks are nearly all empty (``NEAR_EMPTY_SHARE``), an empty dataset. Near-binary
masks (JPEG or anti-aliasing noise) are only a note. Statistics: counts, image sizes, foreground fraction per pair.

Label maps (``labels``: the ``data.labels`` mapping, or the ``dataset.json`` labels of a
Decathlon folder): every id a map holds that the mapping does not name is an error naming the
file, and the report counts each class's pixels and the images it appears in (class
frequencies); the binary-mask check does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medspikeformer.errors import DataError
from medspikeformer.runtime import progress_enabled

from .base import DatasetSource, Sample
from .build import build_source
from .io import IMAGE_EXTENSIONS, decode_mask_values
from .labels import LabelSpec

FAR_LOW, FAR_HIGH = 32, 223


def mask_far_fraction(grey: np.ndarray) -> float:
    """Fraction of mask pixels far from both 0 and 255 (0 for a 0/1 mask)."""
    if grey.max() <= 1:
        return 0.0
    return float(((grey >= FAR_LOW) & (grey <= FAR_HIGH)).mean())


@dataclass
class CheckReport:
    """Outcome of ``check_dataset``; ``errors`` non-empty means the data needs fixing."""

    dataset: str
    root: str
    pairs: int = 0  # image/mask pairs matched
    unpaired: int = 0  # images or masks without their other half
    checked: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fg_fractions: list[float] = field(default_factory=list)
    far_fractions: list[float] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    parts: dict[str, int] = field(default_factory=dict)
    noisy_masks: int = 0
    #: label maps only: pixels and images per class name, and ids found outside the mapping
    class_pixels: dict[str, int] = field(default_factory=dict)
    class_images: dict[str, int] = field(default_factory=dict)
    unknown_ids: dict[int, int] = field(default_factory=dict)  # id → images holding it

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable statistics."""
        fg = np.asarray(self.fg_fractions, dtype=np.float64)
        far = np.asarray(self.far_fractions, dtype=np.float64)
        hs = [s[0] for s in self.sizes]
        ws = [s[1] for s in self.sizes]
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "root": self.root,
            "pairs": self.pairs,
            "unpaired": self.unpaired,
            "checked": self.checked,
            "errors": len(self.errors),
            "parts": self.parts,
        }
        if fg.size:
            out["foreground_fraction"] = {
                "mean": float(fg.mean()),
                "median": float(np.median(fg)),
                "min": float(fg.min()),
                "max": float(fg.max()),
                "empty_masks": int((fg == 0).sum()),
            }
        if far.size:
            out["mask_pixels_far_from_0_255"] = {"mean": float(far.mean()), "max": float(far.max())}
            out["masks_not_strictly_binary"] = self.noisy_masks
        if self.class_pixels:
            total = sum(self.class_pixels.values()) or 1
            out["classes"] = {
                name: {
                    "pixels": n,
                    "fraction": n / total,
                    "images": self.class_images.get(name, 0),
                }
                for name, n in self.class_pixels.items()
            }
            out["unknown_ids"] = {str(k): v for k, v in sorted(self.unknown_ids.items())}
        if hs:
            out["image_size"] = {"min_hw": [min(hs), min(ws)], "max_hw": [max(hs), max(ws)]}
        return out


def _count_labels(report: CheckReport, labels: LabelSpec, mask: np.ndarray, where: str) -> None:
    """Class frequencies and unknown ids of one label map."""
    for name, n in labels.frequencies(mask).items():
        report.class_pixels[name] = report.class_pixels.get(name, 0) + n
        report.class_images[name] = report.class_images.get(name, 0) + (n > 0)
    unknown = labels.unknown_ids(mask)
    for i in unknown:
        report.unknown_ids[i] = report.unknown_ids.get(i, 0) + 1
    if unknown:
        known = ", ".join(map(str, sorted(labels.known_ids)))
        report.errors.append(
            f"{where}: label id(s) {', '.join(map(str, unknown))} not in the labels "
            f"(known ids: {known})"
        )


#: A split (an official part, or the whole dataset) in which at least this share of the masks is
#: empty is flagged: masks that decode as empty by accident look like this, and the metrics'
#: "both empty = 1" rule would then report mIoU ≈ 1.0.
NEAR_EMPTY_SHARE = 0.95


def near_empty_message(empty: int, total: int, where: str) -> str | None:
    """The problem line when ``empty`` of ``total`` masks are empty (at least 2 masks and a
    share ≥ :data:`NEAR_EMPTY_SHARE`), else ``None``."""
    if total < 2 or empty < NEAR_EMPTY_SHARE * total:
        return None
    return (
        f"{where}: {empty} of {total} masks are empty — masks that read as empty by accident "
        "(a label id, colour or palette the reader does not see, docs/data.md), or a split "
        "without foreground; its mIoU would count every empty prediction as perfect"
    )


def warn_if_nearly_empty(dataset: Any, where: str, limit: int = 64) -> None:
    """Warn when nearly every mask of ``dataset`` (a ``SegmentationDataset``) is empty, judged on
    up to ``limit`` evenly spaced pairs (decoded through the cache, no augmentation)."""
    import warnings

    n = len(dataset)
    if n < 2 or getattr(dataset, "labels", None) is not None:
        return
    idx = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(int))
    empty = sum(not dataset.load_arrays(int(i))[1].any() for i in idx)
    msg = near_empty_message(empty, len(idx), where)
    if msg:
        warnings.warn(msg, stacklevel=2)


def _mask_levels(raw: np.ndarray) -> np.ndarray:
    """Stored mask values on the 8-bit scale, colour reduced to its strongest channel and alpha
    dropped (for the noise statistics only; decoding is :func:`read_mask`)."""
    arr = raw[..., :-1] if raw.ndim == 3 and raw.shape[-1] in (2, 4) else raw
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    if arr.max(initial=0) <= 1:
        return arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        arr = np.round(arr.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    return arr


def _flag_near_empty(report: CheckReport, samples: list[Sample]) -> None:
    """One problem per part (or for the whole dataset) whose masks are nearly all empty."""
    checked = report.fg_fractions
    parts = {"all pairs": checked}
    if len(checked) == len(samples):  # parts only when every pair decoded (fractions line up)
        for s, fg in zip(samples, checked):
            if s.part:
                parts.setdefault(f"part {s.part!r}", []).append(fg)
    for where, fgs in parts.items():
        msg = near_empty_message(sum(f == 0 for f in fgs), len(fgs), f"{report.root} ({where})")
        if msg:
            report.errors.append(msg)


def check_source(source: DatasetSource, progress: bool = True, labels: Any = None) -> CheckReport:
    """Decode every pair of ``source`` at full resolution and collect problems and statistics.

    ``labels``: the ``data.labels`` mapping (or a ``LabelSpec``) when masks are label maps;
    default the source's own (a Decathlon folder's ``dataset.json``), else binary masks.
    """
    if labels is None:
        labels = getattr(source, "labels", None)
    if labels is not None and not isinstance(labels, LabelSpec):
        labels = LabelSpec.from_mapping(labels)
    report = CheckReport(source.name, str(source.root))
    scan = source.scan()
    report.errors.extend(scan.problems)
    for dup in scan.duplicate_ids():  # what build_dataset refuses
        files = [str(s.image) for s in scan.samples if s.id == dup]
        report.errors.append(
            f"{source.root}: duplicate sample id {dup!r} ({', '.join(files[:3])}): rename one"
        )
    report.pairs = len(scan.samples)  # matched image/mask pairs only
    report.unpaired = sum("no mask" in p or "without a matching" in p for p in scan.problems)
    for s in scan.samples:
        key = s.part or "unassigned"
        report.parts[key] = report.parts.get(key, 0) + 1
    if not scan.samples and not scan.problems:
        report.errors.append(f"{source.root}: no image/mask pairs found")
        return report
    iterator = scan.samples
    if progress_enabled(progress):
        from tqdm import tqdm

        iterator = tqdm(scan.samples, desc=f"checking {source.name}", leave=False)
    for s in iterator:
        try:
            img, mask = source.load_checked(s)
        except DataError as exc:
            report.errors.append(str(exc))
            continue
        report.checked += 1
        report.sizes.append(tuple(img.shape[:2]))
        report.fg_fractions.append(float((mask > 0).mean()))
        if labels is not None:
            _count_labels(report, labels, mask, str(s.masks[0] if s.masks else s.image))
            continue
        if s.masks and all(m.suffix.lower() in IMAGE_EXTENSIONS for m in s.masks):
            # read_mask (in load_checked) already refused what its rule cannot read; here the
            # stored values are only described: near-binary masks and their noise
            greys = [_mask_levels(decode_mask_values(m)) for m in s.masks]
            far = max(mask_far_fraction(g) for g in greys)
            report.noisy_masks += any(len(np.unique(g)) > 2 for g in greys)
            report.far_fractions.append(far)
    if report.noisy_masks:
        report.notes.append(
            f"{report.noisy_masks} near-binary mask(s) (compression or anti-aliasing noise; at "
            f"most {100 * max(report.far_fractions):.3f}% of a mask's pixels far from 0/255); "
            "binarised at > 127"
        )
    if labels is None:
        _flag_near_empty(report, scan.samples)
    return report


def check_dataset(
    name: str,
    root: str | Path | None,
    progress: bool = True,
    labels: Any = None,
    **options: Any,
) -> CheckReport:
    """Validate a dataset folder; ``DataError`` only for a missing root or an unknown layout.
    ``labels``: see :func:`check_source`."""
    return check_source(build_source(name, root, **options), progress=progress, labels=labels)


def overlay(
    img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (0, 255, 0)
) -> np.ndarray:
    """RGB uint8 image with the mask tinted (40 %) and its outline drawn in ``colour``."""
    import cv2

    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img.copy()
    m = mask.astype(bool)
    col = np.asarray(colour, dtype=np.float32)
    rgb[m] = np.round(0.6 * rgb[m] + 0.4 * col).astype(np.uint8)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, colour, 1)
    return rgb


CAPTION_HEIGHT = 14


def id_caption(text: str, width: int) -> np.ndarray:
    """A white band ``CAPTION_HEIGHT`` × ``width`` with ``text`` (printable-escaped, cut to fit
    with "…" → "..") in black: which file a tile of ``data show`` is."""
    import cv2

    from medspikeformer.errors import printable

    band = np.full((CAPTION_HEIGHT, width, 3), 255, np.uint8)
    text = printable(text).encode("ascii", "replace").decode()
    scale, thick = 0.35, 1
    while text and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] > width - 4:
        text = text[:-3] + ".." if len(text) > 3 else text[:-1]
    cv2.putText(band, text, (2, CAPTION_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                thick, cv2.LINE_AA)  # fmt: skip
    return band


def preview_grid(dataset: Any, n: int = 8, columns: int | None = None) -> np.ndarray:
    """Grid of ``n`` evenly spaced pairs: for each, its sample id above the image above its mask
    overlay. uint8 RGB."""
    if len(dataset) == 0:
        raise DataError("nothing to show: the dataset split is empty")
    n = min(n, len(dataset))
    idx = np.unique(np.linspace(0, len(dataset) - 1, n).round().astype(int))
    tiles = []
    for i in idx:
        img, mask = dataset.load_arrays(int(i))
        rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
        caption = id_caption(str(dataset.samples[int(i)].id), rgb.shape[1])
        tiles.append(np.concatenate([caption, rgb, overlay(img, mask)], axis=0))
    columns = columns or len(tiles)
    rows = []
    h, w = tiles[0].shape[:2]
    gap = 4
    for r in range(0, len(tiles), columns):
        row = tiles[r : r + columns]
        row += [np.full_like(tiles[0], 255)] * (columns - len(row))
        parts = []
        for t in row:
            parts += [t, np.full((h, gap, 3), 255, np.uint8)]
        rows += [
            np.concatenate(parts[:-1], axis=1),
            np.full((gap, columns * (w + gap) - gap, 3), 255, np.uint8),
        ]
    return np.concatenate(rows[:-1], axis=0)
