"""ONNX export of the spike-driven inference graph, and its check against PyTorch.

What is exported is the model's eval forward ``x [B,C,H,W] → logits [B,K,H,W]`` (K = the
model's ``num_classes``; for K > 1 the file's metadata records ``num_classes`` and ``activation``): the direct
encoding, all ``T`` timesteps of every LIF neuron unrolled, the decoder and the head, averaged
over T. No teacher and no stage mask heads (they only run in training or ``forward_all``).

LIF neurons during export: the neuron's eager kernel writes into preallocated buffers with
``out=`` arguments, which the tracer does not record (the spikes of the example input would be
frozen into the graph as constants). For the duration of the export every ``LIFNeuron`` runs on
its ``"unrolled"`` backend (``neurons.lif_backend``): the same Eq. 1–3 in plain tensor operations
(``Add``, ``Mul``, ``GreaterOrEqual``, ``Cast``, ``Sub`` per timestep in ONNX); each neuron's
backend is restored afterwards. The onnxruntime comparison checks the two agree.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)`` traces the model once;
opset 17. The batch axis is dynamic; H and W are fixed to the export size because the attention
scale ``1/(N·√d)`` (N = h·w tokens) is read from the traced shape and becomes a constant —
export at the size you will run at (the training size by default).

Verification: ``onnx.checker.check_model`` and, when onnxruntime is installed, a run on random
inputs compared with PyTorch, twice: with onnxruntime's graph optimisations up to
``ORT_ENABLE_EXTENDED`` (same arithmetic as PyTorch: checks the graph; max |Δlogit| ≈ 1e-7) and
with ``ORT_ENABLE_ALL`` (the default, whose NCHWc convolution kernels sum in another order). A
membrane within float rounding of the threshold (e.g. 0.9999998 vs 1.0) can then fire in one and
not the other, and through the global attention one flipped spike perturbs the whole image; that
run is reported as the fraction of mask pixels (logit ≥ 0) that differ.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medspikeformer.errors import ConfigError
from medspikeformer.models import SegmentationModel
from medspikeformer.neurons.lif import lif_backend, lif_unrolled
from medspikeformer.outputs import atomic_path

__all__ = ["ExportReport", "compare_onnx", "export_friendly_neurons", "export_onnx", "lif_unrolled"]

DEFAULT_OPSET = 17
#: Opsets accepted: 9 is the oldest one the models were checked to export and verify with; 20 is
#: the newest the TorchScript-based exporter writes. Outside, torch fails with a traceback.
MIN_OPSET, MAX_OPSET = 9, 20


@dataclass
class ExportReport:
    """Result of :func:`export_onnx`.

    Attributes:
        path: the ``.onnx`` file.
        input_shape: ``(B, C, H, W)`` traced (B is dynamic in the file).
        opset: ONNX opset.
        nodes: number of graph nodes.
        ops: sorted distinct operator types.
        max_abs_error: max |ONNX − PyTorch| over the verification inputs, onnxruntime
            optimisations up to ``ORT_ENABLE_EXTENDED`` (None if not run).
        mismatch_fraction: fraction of logits differing by more than ``atol`` (same run).
        full_opt_max_abs_error: max |ONNX − PyTorch| with ``ORT_ENABLE_ALL``.
        full_opt_mask_disagreement: fraction of pixels whose mask (logit ≥ 0) differs there.
    """

    path: Path
    input_shape: tuple[int, int, int, int]
    opset: int
    nodes: int
    ops: list[str]
    max_abs_error: float | None = None
    mismatch_fraction: float | None = None
    full_opt_max_abs_error: float | None = None
    full_opt_mask_disagreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "input_shape": list(self.input_shape),
            "opset": self.opset,
            "nodes": self.nodes,
            "ops": self.ops,
            "max_abs_error": self.max_abs_error,
            "mismatch_fraction": self.mismatch_fraction,
            "full_opt_max_abs_error": self.full_opt_max_abs_error,
            "full_opt_mask_disagreement": self.full_opt_mask_disagreement,
        }


def export_friendly_neurons(model: nn.Module) -> AbstractContextManager[int]:
    """Run every ``LIFNeuron`` of ``model`` on the traceable ``"unrolled"`` backend inside the
    block (restored on exit). Yields the number of neurons."""
    return lif_backend(model, "unrolled")


class _EvalLogits(nn.Module):
    """Wraps a model so the traced graph is exactly its eval forward returning the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from medspikeformer.inference.sliding import logits_of

        return logits_of(self.model(x))


def export_onnx(
    model: SegmentationModel,
    out_path: str | Path,
    size: tuple[int, int],
    batch: int = 1,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    verify_batches: int = 2,
    seed: int = 0,
    metadata: Mapping[str, object] | None = None,
) -> ExportReport:
    """Export ``model``'s eval forward to ONNX at input size ``size = (H, W)``.

    The file's metadata (``metadata_props``) says how to use it, for every model: ``num_classes``,
    ``activation`` (sigmoid / softmax), ``input_size`` (``HxW``), ``input_channels``, plus
    ``metadata`` (the command line adds the preprocessing — scaling, resize — and the threshold).

    Args:
        size: export height and width; must be multiples of ``model.size_divisor``.
        batch: batch size of the traced example (the batch axis is dynamic anyway).
        verify: run ``onnx.checker`` and compare with PyTorch on ``verify_batches`` random batches
            (batch sizes 1 and 2) with onnxruntime.

    Returns:
        :class:`ExportReport`.
    """
    onnx = require_export_extra()

    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ConfigError(f"--opset {opset}: supported ONNX opsets are {MIN_OPSET}…{MAX_OPSET}")
    height, width = int(size[0]), int(size[1])
    divisor = int(model.size_divisor)
    if height % divisor or width % divisor:
        raise ConfigError(
            f"export size {height}×{width} is not a multiple of the model's size_divisor {divisor}"
        )
    in_channels = int(model.in_channels)
    model = model.cpu().eval()
    wrapper = _EvalLogits(model).eval()
    example = torch.rand(
        batch, in_channels, height, width, generator=torch.Generator().manual_seed(seed)
    )
    out_path = Path(out_path)
    # Written to a temp file beside the target, checked and verified there, then renamed: a full
    # disk or a failed check leaves no partial .onnx (medspikeformer.outputs.atomic_path).
    with atomic_path(out_path, error=ConfigError) as tmp:
        with torch.no_grad(), warnings.catch_warnings(), export_friendly_neurons(model):
            warnings.simplefilter("ignore")  # tracer warnings about shape-derived constants
            torch.onnx.export(
                wrapper,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["image"],
                output_names=["logits"],
                opset_version=opset,
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        from medspikeformer.inference.sliding import activation_of

        described = {  # how a consumer feeds the graph and reads its logit channels
            "num_classes": int(model.num_classes),
            "activation": activation_of(model),
            "input_size": f"{height}x{width}",
            "input_channels": in_channels,
            **dict(metadata or {}),
        }
        for key, value in described.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        onnx.save(proto, str(tmp))
        report = ExportReport(
            path=out_path,
            input_shape=(batch, in_channels, height, width),
            opset=opset,
            nodes=len(proto.graph.node),
            ops=sorted({n.op_type for n in proto.graph.node}),
        )
        if verify:
            _verify(model, tmp, report, in_channels, height, width, seed, verify_batches)
    return report


def _verify(
    model: nn.Module,
    onnx_path: Path,
    report: ExportReport,
    in_channels: int,
    height: int,
    width: int,
    seed: int,
    verify_batches: int,
) -> None:
    """Fill ``report``'s comparison with PyTorch (skipped without onnxruntime)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    gen = torch.Generator().manual_seed(seed + 1)
    inputs = [
        torch.rand(1 + i % 2, in_channels, height, width, generator=gen)
        for i in range(verify_batches)
    ]
    report.max_abs_error, report.mismatch_fraction, _ = compare_onnx(
        model, onnx_path, inputs, full_optimization=False
    )
    report.full_opt_max_abs_error, _, report.full_opt_mask_disagreement = compare_onnx(
        model, onnx_path, inputs, full_optimization=True
    )


EXPORT_EXTRA = "pip install 'medspikeformer[export]'"
"""How to get ONNX export's packages (onnx, onnxruntime, onnxscript; pyproject's ``export``)."""


def require_export_extra() -> Any:
    """The ``onnx`` module, or a one-line ConfigError naming the extra that installs it (and
    ``onnxscript``, which ``torch.onnx`` needs) in a plain install."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"ONNX export needs {' and '.join(missing)}, not installed here: {EXPORT_EXTRA}"
        )
    import onnx

    return onnx


def compare_onnx(
    model: nn.Module,
    onnx_path: str | Path,
    inputs: list[torch.Tensor],
    atol: float = 1e-4,
    full_optimization: bool = False,
) -> tuple[float, float, float]:
    """Run ``inputs`` through PyTorch and onnxruntime (CPU).

    ``full_optimization=False`` limits onnxruntime to ``ORT_ENABLE_EXTENDED`` (PyTorch's
    arithmetic); ``True`` uses its default ``ORT_ENABLE_ALL`` (see the module doc).

    Returns:
        (max abs logit error, fraction of logits off by more than ``atol``, fraction of mask
        pixels — logit ≥ 0; a softmax model's argmax class — that differ).
    """
    import onnxruntime as ort

    from medspikeformer.inference.sliding import activation_of, logits_of

    softmax = activation_of(model) == "softmax"

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if full_optimization
        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    )
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst, bad, flipped, total, pixels = 0.0, 0, 0, 0, 0
    model = model.cpu().eval()
    for x in inputs:
        with torch.no_grad():
            ref = logits_of(model(x)).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        if got.shape != ref.shape:
            raise AssertionError(f"ONNX output {got.shape} differs from PyTorch {ref.shape}")
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        worst = max(worst, float(diff.max()))
        bad += int((diff > atol).sum())
        total += diff.size
        if softmax:
            flipped += int((got.argmax(1) != ref.argmax(1)).sum())
            pixels += ref.shape[0] * ref.shape[2] * ref.shape[3]
        else:
            flipped += int(((got >= 0) != (ref >= 0)).sum())
            pixels += diff.size
    total, pixels = max(total, 1), max(pixels, 1)
    return worst, bad / total, flipped / pixels
