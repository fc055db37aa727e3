"""Inference: evaluation with the paper's metrics, prediction on new images (sliding window /
resize, NIfTI), attention maps for ``explain`` and ONNX export (docs/inference.md)."""

from __future__ import annotations

from medspikeformer.inference.context import load_context, load_pretrained
from medspikeformer.inference.evaluate import EvalResult, evaluate, resolve_device
from medspikeformer.inference.export import ExportReport, compare_onnx, export_onnx
from medspikeformer.inference.predict import (
    DEFAULT_MAX_PIXELS,
    Predictor,
    expand_inputs,
    predict_paths,
    probe_shape,
)
from medspikeformer.inference.sliding import (
    forward_probs,
    pad_to_multiple,
    predict_mask_tiled,
    sliding_window_probs,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "EvalResult",
    "ExportReport",
    "Predictor",
    "compare_onnx",
    "evaluate",
    "expand_inputs",
    "export_onnx",
    "forward_probs",
    "load_context",
    "load_pretrained",
    "pad_to_multiple",
    "predict_mask_tiled",
    "predict_paths",
    "probe_shape",
    "resolve_device",
    "sliding_window_probs",
]
