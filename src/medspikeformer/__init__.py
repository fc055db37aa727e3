"""MedSpikeFormer: a spike-driven transformer for 2-D medical image segmentation.

``msf.create_model`` / ``msf.list_models`` and the sub-packages (``msf.data``, ``msf.losses``,
``msf.metrics``, ``msf.engine``, ...) are imported on first use: importing the package loads no
torch and changes nothing in the process (the command line sets its process variables before
torch loads; :mod:`medspikeformer.allocator`).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

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
    if name in ("create_model", "list_models"):
        return getattr(importlib.import_module(f"{__name__}.models"), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
