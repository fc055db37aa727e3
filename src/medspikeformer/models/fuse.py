"""BatchNorm folding for inference: ``fuse_for_inference(model)``.

In eval mode a BatchNorm after a convolution is an affine map per output channel,

    BN(conv(x)) = γ · (W ∗ x + b − μ) / √(σ² + ε) + β = W' ∗ x + b',
    W' = W · γ / √(σ² + ε),   b' = (b − μ) · γ / √(σ² + ε) + β,

so it can be folded into the convolution's weights (``torch.nn.utils.fusion.fuse_conv_bn_eval``)
and replaced by ``nn.Identity``: one pass over each activation map less per layer.

Which (conv, BN) pairs are foldable is found by running the model once on a small probe input
with forward hooks: a pair qualifies only if the BN's input *is* the conv's output (same storage,
same shape) — a BN that follows a LIF, a residual sum or a reshape is left alone. The result is
an eval-mode copy for inference only (its ``state_dict`` has no BN entries: do not save it as a
checkpoint). Numerically the fused conv differs from conv → BN by float rounding (~1e-6 relative);
in a spiking model a membrane that lands within that rounding of the threshold can flip a spike,
so spiking outputs agree up to such rare ties (see tests/models/test_fuse.py).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = [
    "find_conv_bn_pairs",
    "fold_attention_norms",
    "fuse_for_inference",
    "optimize_for_inference",
]


def _probe_input(model: nn.Module) -> torch.Tensor:
    """A small ``[1, C_in, s, s]`` input with ``s`` a multiple of the model's size divisor, in the
    dtype and on the device of the model's parameters (a float64 model needs a float64 probe)."""
    divisor = model.size_divisor
    side = divisor * max(1, -(-32 // divisor))
    param = next(model.parameters())
    return torch.randn(1, model.in_channels, side, side, device=param.device, dtype=param.dtype)


def find_conv_bn_pairs(
    model: nn.Module, example: torch.Tensor | None = None
) -> list[tuple[str, str]]:
    """Names ``(conv, bn)`` of every ``nn.Conv2d`` whose output feeds a ``BatchNorm2d`` directly.

    Runs one eval forward of ``model`` on ``example`` (default: a small random image) with hooks.
    """
    x = _probe_input(model) if example is None else example
    conv_out: dict[str, torch.Tensor] = {}
    bn_in: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o, name=name: conv_out.setdefault(name, o)  # keeps it alive
                )
            )
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(
                module.register_forward_hook(
                    lambda m, i, o, name=name: bn_in.setdefault(name, i[0])
                )
            )
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    pairs = []
    for bn_name, t in bn_in.items():
        for conv_name, o in conv_out.items():
            same = (
                o.shape == t.shape
                and o.data_ptr() == t.data_ptr()
                and o.stride() == t.stride()
                and o.dtype == t.dtype
            )
            if same:
                pairs.append((conv_name, bn_name))
                break
    return pairs


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def fuse_for_inference(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """An eval-mode copy of ``model`` with every conv → BN pair folded into one conv.

    ``example``: an input to probe the graph with (default: a small random image). The input
    model is not modified. The copy has ``fused_pairs`` (the folded ``(conv, bn)`` names).
    """
    fused = copy.deepcopy(model).eval()
    pairs = find_conv_bn_pairs(fused, example)
    for conv_name, bn_name in pairs:
        conv = fused.get_submodule(conv_name)
        bn = fused.get_submodule(bn_name)
        folded = fuse_conv_bn_eval(conv, bn)
        plain = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            bias=True,
            padding_mode=conv.padding_mode,
            device=folded.weight.device,
            dtype=folded.weight.dtype,
        )
        with torch.no_grad():
            plain.weight.copy_(folded.weight)
            plain.bias.copy_(folded.bias)
        _set(fused, conv_name, plain)
        _set(fused, bn_name, nn.Identity())
    fused.fused_pairs = pairs
    return fused


def optimize_for_inference(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    """What ``predict`` and ``evaluate`` run by default: :func:`fuse_for_inference` (BN folded)
    with every LIF neuron on the ``"fused"`` backend (the compiled one-loop kernels; eager
    fallback), and the BN after each SDSA core folded into the core's matrices
    (``DecomposedSpikeAttention.fold_out_norm``). An eval-mode copy; ``model`` is not modified.

    Spikes can differ from the model as trained only where a membrane lands within float rounding
    of the threshold (see the module docstring); the measured mask agreement on real data is in
    docs/performance.md, and ``--exact`` on the command line runs the model as trained.
    """
    from medspikeformer.neurons import LIFNeuron

    fast = fold_attention_norms(fuse_for_inference(model, example))
    for module in fast.modules():
        if isinstance(module, LIFNeuron):
            module.backend = "fused"
    return fast


def fold_attention_norms(model: nn.Module) -> nn.Module:
    """Fold the BN between each SDSA core and its LIF into the core, in place (eval-mode
    statistics; ``DecomposedSpikeAttention.fold_out_norm``); returns ``model``."""
    for module in model.modules():
        fold = getattr(module, "fold_out_norm", None)
        if callable(fold):
            fold()
    return model
