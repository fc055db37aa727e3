"""BUSI, Breast Ultrasound Images (Al-Dhabyani et al., 2020), as published:

``Dataset_BUSI_with_GT/<class>/<class> (N).png`` with ``<class> (N)_mask.png`` and, for images with
several lesions, ``_mask_1.png``, ``_mask_2.png``… — the mask is their union. Classes ``benign``,
``malignant``, ``normal`` (empty masks; included by default, the paper's 780-image protocol;
``include_normal=False`` drops them). Images are grey stored as RGB. ``class_labels=True``
makes the mask a label map whose id is the lesion's class, from its folder (:data:`CLASS_IDS`:
benign 1, malignant 2; background and normal images 0) — the 3-class task of
``configs/busi-3class.yaml``. ``root`` may be
``Dataset_BUSI_with_GT`` or its parent. Sample ids are the file stems, e.g. ``"benign (12)"``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medspikeformer.errors import DataError

from ..base import DatasetSource, Sample, ScanResult, check_nonempty_file
from ..io import read_image, read_mask
from ..registry import register_dataset

CLASSES = ("benign", "malignant", "normal")
#: Label-map id of each folder's lesions under ``class_labels=True`` (0 is the background).
CLASS_IDS = {"benign": 1, "malignant": 2, "normal": 0}
_IMAGE = re.compile(r"^(?P<stem>.+\(\d+\))\.png$", re.IGNORECASE)
_MASK = re.compile(r"^(?P<stem>.+\(\d+\))_mask(_\d+)?\.png$", re.IGNORECASE)


@register_dataset
class BUSISource(DatasetSource):
    name: ClassVar[str] = "busi"
    options: ClassVar[dict[str, Any]] = {
        "include_normal": True,
        "threshold": 127,
        "class_labels": False,
    }

    stratum_name: ClassVar[str | None] = "class folder"

    def stratum(self, sample: Sample) -> str | None:
        """The class folder (benign/malignant/normal): carves and folds keep the class mix."""
        return sample.image.parent.name

    def resolve_root(self, root: Path) -> Path:
        if (root / "Dataset_BUSI_with_GT").is_dir():
            root = root / "Dataset_BUSI_with_GT"
        if not any((root / c).is_dir() for c in CLASSES):
            raise DataError(
                f"{root}: not a BUSI folder (expected Dataset_BUSI_with_GT/ with benign/, malignant/, normal/)"
            )
        return root

    def cache_options(self) -> dict[str, Any]:
        if self.opts["class_labels"]:
            return {"threshold": self.opts["threshold"], "class_labels": True}
        return {"threshold": self.opts["threshold"]}

    def scan(self) -> ScanResult:
        problems: list[str] = []
        samples: list[Sample] = []
        classes = [c for c in CLASSES if c != "normal" or self.opts["include_normal"]]
        for cls in classes:
            folder = self.root / cls
            if not folder.is_dir():
                continue
            images: dict[str, Path] = {}
            masks: dict[str, list[Path]] = {}
            for p in sorted(folder.iterdir()):
                if p.name.startswith(".") or not p.is_file():
                    continue
                if m := _MASK.match(p.name):
                    masks.setdefault(m["stem"], []).append(p)
                elif m := _IMAGE.match(p.name):
                    images[m["stem"]] = p
            for stem, img in images.items():
                ms = sorted(masks.get(stem, []), key=lambda q: (len(q.name), q.name))
                if not ms:
                    problems.append(
                        f"{img}: no mask found (expected {folder / (stem + '_mask.png')})"
                    )
                    continue
                ok = check_nonempty_file(img, problems)
                for m in ms:
                    ok &= check_nonempty_file(m, problems)
                if ok:
                    samples.append(Sample(id=stem, files=(img, *ms), group=stem))
            for stem, ms in masks.items():
                if stem not in images:
                    problems.append(f"{ms[0]}: mask without a matching image {stem}.png")
        return ScanResult(samples, problems)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        img = read_image(sample.image)
        mask = None
        for path in sample.masks:
            m = read_mask(path, self.opts["threshold"])
            if mask is not None and m.shape != mask.shape:
                raise DataError(
                    f"{path}: mask size {m.shape[1]}×{m.shape[0]} differs from "
                    f"{sample.masks[0].name} ({mask.shape[1]}×{mask.shape[0]})"
                )
            mask = m if mask is None else (mask | m)
        if self.opts["class_labels"]:
            return img, mask.astype(np.uint8) * CLASS_IDS[sample.image.parent.name]
        return img, mask
