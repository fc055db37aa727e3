"""Datasets, splits, preprocessing, caching, augmentation and the synthetic set (docs/data.md).

Entry point: ``build_dataset(name, root, split, size, ...)`` → a ``torch.utils.data.Dataset`` of
``{"image": float32 [C,H,W], "mask": float32 [1,H,W] in {0,1}, "id": str}``.
"""

from __future__ import annotations

from .base import (
    DEFAULT_SEED,
    MAX_SEED,
    DatasetSource,
    Sample,
    SegmentationDataset,
    as_hw,
    check_seed,
    parse_size,
    resize_image,
    resize_pair,
)
from .build import build_dataset, build_source
from .io import read_image, read_label_map, read_mask, to_model_input
from .labels import LabelSpec
from .registry import list_datasets, register_dataset
from .synthetic import make_synthetic_pair

__all__ = [
    "DEFAULT_SEED",
    "MAX_SEED",
    "DatasetSource",
    "LabelSpec",
    "Sample",
    "SegmentationDataset",
    "as_hw",
    "build_dataset",
    "build_source",
    "check_seed",
    "list_datasets",
    "make_synthetic_pair",
    "parse_size",
    "read_image",
    "read_label_map",
    "read_mask",
    "register_dataset",
    "resize_image",
    "resize_pair",
    "to_model_input",
]
