"""LIF neuron forward+backward: eager, ``torch.compile``d, and spikingjelly's ``LIFNode``.

Input ``[T, B, C, H, W]`` drawn so that about a fifth of the neurons fire; the backward pass gets
a random upstream gradient. Spikingjelly (the field's reference implementation, torch backend,
``decay_input=False, v_reset=None``: the same neuron) is timed only when it is importable.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch

from bench_common import make_row, quiet_compile_errors, time_fn

VARIANTS = ("eager", "compiled", "spikingjelly")


def _spikingjelly_node() -> torch.nn.Module | None:
    try:
        reference = os.path.join(sys.prefix, "reference")  # where `make install` puts it
        if os.path.isdir(reference) and reference not in sys.path:
            sys.path.append(reference)
        from spikingjelly.activation_based import neuron, surrogate
    except Exception:
        return None
    return neuron.LIFNode(
        tau=2.0,
        decay_input=False,
        v_reset=None,
        v_threshold=1.0,
        surrogate_function=surrogate.ATan(alpha=2.0),
        step_mode="m",
    )


def build_neuron(variant: str) -> torch.nn.Module | None:
    """The neuron module of a variant, or ``None`` when it is unavailable here."""
    if variant == "spikingjelly":
        return _spikingjelly_node()
    from medspikeformer.neurons import LIFNeuron

    if variant == "eager":
        return LIFNeuron()
    if variant == "compiled":
        return LIFNeuron(compile=True)
    raise ValueError(f"unknown LIF variant {variant!r}; known: {', '.join(VARIANTS)}")


def bench_lif(
    variant: str = "eager",
    shape: tuple[int, ...] | list[int] = (4, 2, 32, 128, 128),
    warmup: int = 2,
    repeat: int = 5,
    device: str = "cpu",
) -> dict[str, Any]:
    """Median seconds of one LIF forward+backward on ``shape`` = ``[T, B, C, H, W]``."""
    shape = tuple(int(s) for s in shape)
    params = {"variant": variant, "shape": list(shape), "device": device}
    name = f"LIF fwd+bwd {variant}"
    neuron = build_neuron(variant)
    if neuron is None:
        return make_row("lif", name, params, status="skipped", notes="spikingjelly not installed")
    neuron = neuron.to(device)
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=gen) * 0.6 + 0.4).to(device).requires_grad_(True)
    grad = torch.randn(shape, generator=gen).to(device)

    last: dict[str, torch.Tensor] = {}

    def step() -> None:
        if hasattr(neuron, "reset"):
            neuron.reset()  # spikingjelly keeps state between calls; ours starts fresh
        x.grad = None
        spikes = neuron(x)
        spikes.backward(grad)
        last["spikes"] = spikes.detach()

    try:
        with quiet_compile_errors():
            timing = time_fn(step, warmup=warmup, repeat=repeat, device=device)
    except Exception as exc:  # a compile failure is a result to report, not a crash
        return make_row("lif", name, params, status="failed", notes=f"{type(exc).__name__}: {exc}")
    notes = ""
    kernels = getattr(neuron, "_kernels", None)
    if variant == "compiled" and kernels is not None and not getattr(kernels, "compiled", True):
        notes = "compile fell back to eager"
    rate = round(float(last["spikes"].float().mean()), 4)
    return make_row(
        "lif",
        name,
        params,
        elements=int(torch.Size(shape).numel()),
        firing_rate=rate,
        notes=notes,
        **timing,
    )
