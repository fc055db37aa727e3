"""ISIC 2018 Task 1 (lesion boundary segmentation), as published by the ISIC archive:

``ISIC2018_Task1-2_Training_Input/ISIC_<7 digits>.jpg`` and
``ISIC2018_Task1_Training_GroundTruth/ISIC_<7 digits>_segmentation.png`` (0/255). Other files in
those folders (LICENSE, ATTRIBUTION) are ignored. When the ``..._Validation_...`` and/or
``..._Test_...`` folder pairs sit beside the training pair, they form the official split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medspikeformer.errors import DataError

from ..base import DatasetSource, Sample, ScanResult
from ..io import read_image, read_mask
from ..registry import register_dataset
from ._common import pair_by_name

_IMAGE = re.compile(r"^ISIC_\d{7}\.jpg$", re.IGNORECASE)
_MASK = re.compile(r"^ISIC_\d{7}_segmentation\.png$", re.IGNORECASE)
_PARTS = {"train": "Training", "val": "Validation", "test": "Test"}


def folders(part: str) -> tuple[str, str]:
    """Published folder names (input, ground truth) of one part."""
    p = _PARTS[part]
    return f"ISIC2018_Task1-2_{p}_Input", f"ISIC2018_Task1_{p}_GroundTruth"


@register_dataset
class ISIC2018Source(DatasetSource):
    name: ClassVar[str] = "isic2018"
    has_official_split: ClassVar[bool] = True
    options: ClassVar[dict[str, Any]] = {"threshold": 127}

    def resolve_root(self, root: Path) -> Path:
        if not any((root / folders(p)[0]).is_dir() for p in _PARTS):
            i, g = folders("train")
            raise DataError(f"{root}: not an ISIC 2018 Task 1 folder (expected {i}/ and {g}/)")
        return root

    def scan(self) -> ScanResult:
        problems: list[str] = []
        present = [
            p
            for p in _PARTS
            if (self.root / folders(p)[0]).is_dir() or (self.root / folders(p)[1]).is_dir()
        ]
        official = len(present) > 1 and "test" in present
        samples: list[Sample] = []
        for part in present:
            img_dir, gt_dir = (self.root / f for f in folders(part))
            for d in (img_dir, gt_dir):
                if not d.is_dir():
                    raise DataError(f"{d}: folder not found (ISIC 2018 {part} part is incomplete)")
            images = sorted(p for p in img_dir.iterdir() if _IMAGE.match(p.name))
            masks = sorted(p for p in gt_dir.iterdir() if _MASK.match(p.name))
            samples += pair_by_name(
                images,
                masks,
                lambda p: [p.stem + "_segmentation.png"],
                problems,
                gt_dir,
                part if official else None,
            )
        return ScanResult(samples, problems)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        return read_image(sample.image), read_mask(sample.masks[0], self.opts["threshold"])
