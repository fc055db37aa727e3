"""Attention forward+backward at N = H·W tokens: the decomposed block against a 1×1 conv.

Three kinds of rows per token count N:

* ``block``: the whole ``DecomposedSpikeAttention`` module (LIF, Q/K/V linear+BN+LIF, the
  linear-time Eq. 9, LIF, 2C→C projection+BN) on ``x [T, B, C, H, W]``; ``block-lif-compiled``
  is the same module with its LIF layers on the fused compiled kernels (``compile_neurons``, as
  models train), ``block-compiled`` the whole module through ``torch.compile``;
* ``conv1x1``: one ``nn.Conv2d(C, C, 1)`` on the same activations ``[T·B, C, H, W]`` — the
  yardstick of the target "attention block ≤ 1.5× a 1×1 conv of the same width";
* ``core`` / ``quadratic``: only the attention arithmetic on spike matrices ``[…, N, d]``, in the
  linear-time form and in the literal N×N form of Eq. 9 (the latter only where its N×N score
  matrices fit in ``quadratic_budget_gb``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bench_common import count_flops, make_row, quiet_compile_errors, time_fn

KINDS = ("block", "block-lif-compiled", "block-compiled", "conv1x1", "core", "quadratic")


def quadratic_bytes(n: int, batch: int) -> int:
    """Bytes the literal form needs for its N×N matrices (4 interactions + 2 sums, float32)."""
    return 6 * n * n * batch * 4


def bench_attention(
    kind: str = "block",
    side: int = 64,
    dim: int = 32,
    num_heads: int = 1,
    timesteps: int = 4,
    batch: int = 2,
    warmup: int = 2,
    repeat: int = 5,
    device: str = "cpu",
    quadratic_budget_gb: float = 2.0,
) -> dict[str, Any]:
    """Median seconds of one forward+backward of ``kind`` at ``N = side²`` tokens, width ``dim``."""
    n = side * side
    params = {
        "kind": kind,
        "N": n,
        "side": side,
        "dim": dim,
        "heads": num_heads,
        "T": timesteps,
        "B": batch,
        "device": device,
    }
    name = f"attention {kind} N={side}²"
    gen = torch.Generator().manual_seed(0)
    if kind in ("block", "block-lif-compiled", "block-compiled"):
        from medspikeformer.attention import DecomposedSpikeAttention

        neuron = {"compile": kind == "block-lif-compiled"}
        module: nn.Module = DecomposedSpikeAttention(dim, num_heads=num_heads, neuron=neuron)
        module = module.to(device).train()
        if kind == "block-compiled":
            module = torch.compile(module)
        x = torch.randn(timesteps, batch, dim, side, side, generator=gen) * 1.5 + 0.5
        x = x.to(device).requires_grad_(True)
        grad = torch.randn(timesteps, batch, dim, side, side, generator=gen).to(device)

        def fn() -> None:
            x.grad = None
            module.zero_grad(set_to_none=True)
            module(x).backward(grad)

    elif kind == "conv1x1":
        module = nn.Conv2d(dim, dim, 1, bias=False).to(device)
        x = (torch.rand(timesteps * batch, dim, side, side, generator=gen) < 0.2).float()
        x = x.to(device).requires_grad_(True)
        grad = torch.randn(timesteps * batch, dim, side, side, generator=gen).to(device)

        def fn() -> None:
            x.grad = None
            module.zero_grad(set_to_none=True)
            module(x).backward(grad)

    elif kind in ("core", "quadratic"):
        from medspikeformer.attention.decomposed import (
            decomposed_attention,
            decomposed_attention_quadratic,
        )

        d = dim // num_heads
        lead = (timesteps * batch, num_heads)
        if kind == "quadratic":
            lead = (1, 1)  # one head of one image: the N×N matrices alone are the point
            params.update(T=1, B=1, heads=1)
            need = quadratic_bytes(n, 1)
            if need > quadratic_budget_gb * 2**30:
                return make_row(
                    "attention",
                    name,
                    params,
                    status="skipped",
                    notes=f"N×N form needs ≈{need / 2**30:.1f} GB > budget",
                )
        f = decomposed_attention if kind == "core" else decomposed_attention_quadratic
        q, k, v = (
            (torch.rand(*lead, n, d, generator=gen) < 0.2).float().to(device).requires_grad_(True)
            for _ in range(3)
        )
        grad = torch.randn(*lead, n, 2 * d, generator=gen).to(device)
        scale = 1.0 / (n * math.sqrt(d))

        def fn() -> None:
            for t in (q, k, v):
                t.grad = None
            f(q, k, v, scale=scale).backward(grad)

    else:
        raise ValueError(f"unknown attention kind {kind!r}; known: {', '.join(KINDS)}")

    try:
        with quiet_compile_errors():
            timing = time_fn(fn, warmup=warmup, repeat=repeat, device=device)
    except Exception as exc:
        return make_row(
            "attention", name, params, status="failed", notes=f"{type(exc).__name__}: {exc}"
        )
    gflop = count_flops(fn) / 1e9 if kind != "block-compiled" else None
    return make_row("attention", name, params, gflop=gflop, **timing)
