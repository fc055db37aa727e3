"""Shared pieces of the attention modules: token layout helpers and the spiking Q/K/V stem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from medspikeformer.errors import ConfigError
from medspikeformer.layers import SpikeSavingConv2d, fold
from medspikeformer.neurons import create_neuron
from medspikeformer.precision import float32_region, upcast


def float32_core(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, **kwargs: Any):
    """``fn(*tensors, **kwargs)`` with bf16/fp16 tensors upcast to float32 and autocast off.

    For the spiking attention cores: their operands are 0/1 spikes (exact in any dtype), but their
    products are token counts up to N·d and the decomposed core's output is a large per-channel
    constant plus a small token-dependent part. bf16 keeps 8 significant bits (integers exact
    only up to 256); its rounding of that output, blown up by the BatchNorm that follows, flipped
    about 1 % of the spikes after it (docs/training.md, "Precision"). In fp32 runs it is a plain
    call (``upcast`` returns float32 tensors as they are).
    """
    with float32_region(tensors[0].device.type):
        return fn(*(upcast(t) for t in tensors), **kwargs)


def check_heads(dim: int, num_heads: int) -> int:
    """Return the head width ``d = dim / num_heads``; ``ConfigError`` if it does not divide."""
    if num_heads < 1 or dim % num_heads:
        raise ConfigError(f"attention: dim {dim} is not divisible by num_heads {num_heads}")
    return dim // num_heads


def to_heads(x: torch.Tensor, parts: int, num_heads: int) -> torch.Tensor:
    """``[T·B, parts·C, H, W]`` → ``[parts, T·B, heads, N, d]`` (a strided view, no copy)."""
    tb, c, h, w = x.shape
    d = c // (parts * num_heads)
    return x.view(tb, parts, num_heads, d, h * w).permute(1, 0, 2, 4, 3)


def from_heads(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[T·B, heads, N, d']`` → ``[T·B, heads·d', H, W]`` (channels grouped per head)."""
    tb, nh, _, d = x.shape
    return x.transpose(-1, -2).reshape(tb, nh * d, h, w)


class SpikeQKV(nn.Module):
    """LIF → 1×1 conv (C → parts·C, i.e. one Linear per Q/K/V) → BN → LIF.

    Input real ``[T, B, C, H, W]``; output spikes ``[T·B, parts·C, H, W]``. The first LIF makes the
    linear layer see spikes only; the second turns Q, K (, V) into spike matrices.
    """

    def __init__(self, dim: int, parts: int, neuron: dict) -> None:
        super().__init__()
        self.in_lif = create_neuron(neuron)
        self.proj = SpikeSavingConv2d(dim, parts * dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(parts * dim)
        self.lif = create_neuron(neuron, binary=True)  # Q, K, V enter products: 0/1 always

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        s = self.in_lif(x)
        y = self.bn(self.proj(fold(s)))
        return self.lif(y.view(t, b, *y.shape[1:])).flatten(0, 1)


class OutProjection(nn.Module):
    """(BN → LIF) → 1×1 conv (C_in → C) → BN; ``[T·B, C_in, H, W]`` → ``[T, B, C, H, W]``.

    With ``neuron`` given, the (scaled) attention map is first normalised by a BatchNorm over its
    C_in channels and turned into spikes, so the projection sees spikes only. The BN sets the
    operating point of the LIF (at inference SDSA folds it into its core); the fixed 1/(N·√d)
    scale before it keeps its statistics independent of the token count N.
    """

    def __init__(self, in_dim: int, dim: int, neuron: dict | None) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_dim) if neuron is not None else None
        self.lif = create_neuron(neuron) if neuron is not None else None
        conv = SpikeSavingConv2d if neuron is not None else nn.Conv2d
        self.proj = conv(in_dim, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        if self.lif is not None:
            x = self.norm(x)
            x = self.lif(x.view(t, -1, *x.shape[1:])).flatten(0, 1)
        y = self.bn(self.proj(x))
        return y.view(t, -1, *y.shape[1:])


def relative_to_mean(x: torch.Tensor, dim: int, eps: float = 1e-6) -> torch.Tensor:
    """``x / mean(x, dim)`` (≥ 0 input): 1 means "as active as the average"; scale-free in N."""
    return x / (x.mean(dim=dim, keepdim=True) + eps)
