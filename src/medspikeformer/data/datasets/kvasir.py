"""Kvasir-SEG (Jha et al., 2020): ``Kvasir-SEG/images/<id>.jpg`` + ``Kvasir-SEG/masks/<id>.jpg``.

The masks are JPEGs (compression noise around 0 and 255): binarised at grey value > 127.
``root`` may be the ``Kvasir-SEG`` folder or the folder above it. No official split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medspikeformer.errors import DataError

from ..base import DatasetSource, Sample, ScanResult
from ..io import read_image, read_mask
from ..registry import register_dataset
from ._common import list_images, pair_by_name


@register_dataset
class KvasirSource(DatasetSource):
    name: ClassVar[str] = "kvasir"
    options: ClassVar[dict[str, Any]] = {"threshold": 127}

    def resolve_root(self, root: Path) -> Path:
        if (root / "Kvasir-SEG").is_dir():
            root = root / "Kvasir-SEG"
        if not ((root / "images").is_dir() and (root / "masks").is_dir()):
            raise DataError(
                f"{root}: not a Kvasir-SEG folder (expected Kvasir-SEG/images/ and Kvasir-SEG/masks/)"
            )
        return root

    def scan(self) -> ScanResult:
        problems: list[str] = []
        images = list_images(self.root / "images")
        masks = list_images(self.root / "masks")
        samples = pair_by_name(
            images,
            masks,
            lambda p: [p.name, p.stem + ".jpg", p.stem + ".png"],
            problems,
            self.root / "masks",
        )
        return ScanResult(samples, problems)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        return read_image(sample.image), read_mask(sample.masks[0], self.opts["threshold"])
