"""Generic layout: ``<root>/images/<stem>.<ext>`` + ``<root>/masks/<stem><mask_suffix>.<mask_ext>``.

Options: ``image_dir`` ("images"), ``mask_dir`` ("masks"), ``mask_suffix`` ("", e.g. "_mask" or
"_segmentation"), ``mask_ext`` (None = the image's extension, then .png/.jpg/.bmp/.tif),
``threshold`` (127: mask grey value > threshold is foreground; 0/1 masks are recognised). If the
root holds ``train/`` and ``test/`` (and optionally ``val/``) sub-folders each in this layout, they
form the official split. ``label_map`` (false): masks are label maps of integer class ids, read
as stored (PNG/TIFF; ``data.labels`` names the ids) instead of thresholded binary masks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medspikeformer.errors import DataError

from ..base import DatasetSource, Sample, ScanResult
from ..io import IMAGE_EXTENSIONS, read_image, read_label_map, read_mask
from ..registry import register_dataset
from ._common import list_images, pair_by_name

_PARTS = ("train", "val", "test")


@register_dataset
class FolderSource(DatasetSource):
    name: ClassVar[str] = "folder"
    has_official_split: ClassVar[bool] = True
    options: ClassVar[dict[str, Any]] = {
        "image_dir": "images",
        "mask_dir": "masks",
        "mask_suffix": "",
        "mask_ext": None,
        "threshold": 127,
        "label_map": False,
    }

    def cache_options(self) -> dict[str, Any]:
        opts = super().cache_options()
        if not opts.get("label_map"):
            opts.pop("label_map", None)  # binary entries keep their keys
        return opts

    def _parts(self, root: Path) -> list[tuple[Path, str | None]]:
        i, m = self.opts["image_dir"], self.opts["mask_dir"]
        if (root / i).is_dir() and (root / m).is_dir():
            return [(root, None)]
        parts = [
            (root / p, p) for p in _PARTS if (root / p / i).is_dir() and (root / p / m).is_dir()
        ]
        return parts

    def resolve_root(self, root: Path) -> Path:
        if not self._parts(root):
            i, m = self.opts["image_dir"], self.opts["mask_dir"]
            found = sorted(p.name + "/" for p in root.iterdir() if p.is_dir())[:6]
            holds = f"it holds {', '.join(found)}" if found else "it holds no folders"
            raise DataError(
                f"{root}: expected {i}/ and {m}/ folders (or train/ and test/ holding them); "
                f"{holds} — name yours with the options image_dir and mask_dir "
                f"(e.g. --set data.options.image_dir=IMAGES --set data.options.mask_dir=MASKS; "
                f"also mask_suffix, mask_ext, threshold: docs/data.md)"
            )
        return root

    def _mask_names(self, img: Path) -> list[str]:
        suffix = self.opts["mask_suffix"]
        ext = self.opts["mask_ext"]
        if ext:
            ext = ext if ext.startswith(".") else "." + ext
            return [img.stem + suffix + ext]
        exts = [img.suffix] + [
            e
            for e in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
            if e != img.suffix.lower()
        ]
        return [img.stem + suffix + e for e in exts]

    def scan(self) -> ScanResult:
        problems: list[str] = []
        samples: list[Sample] = []
        parts = self._parts(self.root)
        for base, part in parts:
            images = list_images(base / self.opts["image_dir"])
            masks = list_images(base / self.opts["mask_dir"], (*IMAGE_EXTENSIONS, ".gif"))
            prefix = f"{part}/" if part and len(parts) > 1 else ""
            found: list[str] = []
            paired = pair_by_name(
                images,
                masks,
                self._mask_names,
                found,
                base / self.opts["mask_dir"],
                part,
                prefix,
            )
            if not paired and images and masks:
                found.insert(0, self._suffix_hint(images, masks, base))
            samples += paired
            problems += found
        return ScanResult(samples, problems)

    def _suffix_hint(self, images: list[Path], masks: list[Path], base: Path) -> str:
        """Why no image found its mask, with the ``mask_suffix`` that would pair them."""
        stems = {img.stem for img in images}
        suffixes = {
            m.stem[len(stem) :]
            for m in masks
            for stem in stems
            if m.stem.startswith(stem) and m.stem != stem
        }
        example = masks[0].name
        if len(suffixes) == 1:
            (suffix,) = suffixes
            return (
                f"{base / self.opts['mask_dir']}: no image has a mask named like it (masks look "
                f"like {example}); set the option mask_suffix={suffix} "
                f"(--set data.options.mask_suffix={suffix})"
            )
        return (
            f"{base / self.opts['mask_dir']}: no image has a mask named like it (masks look like "
            f"{example}; expected <image stem>{self.opts['mask_suffix']}.<ext>); see the options "
            "mask_suffix and mask_ext (--set data.options.mask_suffix=...)"
        )

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        if self.opts["label_map"]:
            return read_image(sample.image), read_label_map(sample.masks[0])
        return read_image(sample.image), read_mask(sample.masks[0], self.opts["threshold"])
