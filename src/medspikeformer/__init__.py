"""MedSpikeFormer: a spike-driven transformer for 2-D medical image segmentation.

``msf.create_model`` / ``msf.list_models`` are imported eagerly; the sub-packages
(``msf.data``, ``msf.losses``, ``msf.metrics``, ``msf.engine``, ...) are imported on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# Transparent huge pages for PyTorch's large CPU tensors (c10's THP_MEM_ALLOC_ENABLE; read once,
# so it only takes effect when this package is imported before torch — as the CLI does). A
# training step allocates hundreds of MB per layer; with 4 KB pages every fresh buffer costs
# ~16 000 page faults per 64 MB. Measured on 2 cores (docs/performance.md): page faults 11.5 M →
# 0.5 M and the attention block 1.8× faster, a training step ~10 % faster. Set
# THP_MEM_ALLOC_ENABLE=0 to opt out. A CPU-only setting: not applied where an NVIDIA GPU is
# visible (runtime.cuda_expected), since the run then keeps its large tensors on the GPU.
from medspikeformer.runtime import cuda_expected

if not cuda_expected():
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from medspikeformer.models import create_model, list_models

_SUBPACKAGES = (
    "analysis",
    "attention",
    "data",
    "engine",
    "experiments",
    "inference",
    "losses",
    "metrics",
    "models",
    "neurons",
    "profile",
    "viz",
)

__all__ = ["__version__", "create_model", "list_models", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
