"""MedSpikeFormer: a spike-driven transformer for 2-D medical image segmentation."""

from __future__ import annotations

__version__ = "0.1.0"

from medspikeformer.models import create_model, list_models  # noqa: E402

__all__ = ["__version__", "create_model", "list_models"]
