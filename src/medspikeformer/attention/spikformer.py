"""Spiking Self-Attention of Spikformer (Zhou et al., 2023), the ``ssa`` baseline.

Per head, with spikes Q, K, V ∈ {0,1}^{N×d}: ``SSA = Q Kᵀ V · scale`` (activated pairs only,
no softmax), computed re-associated as ``Q (Kᵀ V)`` in O(N·d²). Scale 1 / (N·√d) as in
``decomposed.py`` (entries of Q Kᵀ V lie in [0, N·d]), then BN → LIF → Linear(C → C) → BN.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medspikeformer.attention.common import (
    OutProjection,
    SpikeQKV,
    check_heads,
    float32_core,
    from_heads,
    to_heads,
)
from medspikeformer.attention.registry import register_attention


def spiking_self_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """``Q (Kᵀ V) · scale``; ``[..., N, d]`` → ``[..., N, d]`` (default scale 1/(N·√d))."""
    n, d = q.shape[-2], q.shape[-1]
    if scale is None:
        scale = 1.0 / (n * math.sqrt(d))
    kv = (k.transpose(-1, -2) @ v) * scale  # [..., d, d]
    return torch.matmul(kv.transpose(-1, -2), q.transpose(-1, -2)).transpose(-1, -2)


@register_attention("ssa")
class SpikingSelfAttention(nn.Module):
    """Spikformer SSA. ``x [T, B, C, H, W]`` (real) → ``[T, B, C, H, W]``."""

    def __init__(self, dim: int, num_heads: int = 1, neuron: dict | None = None) -> None:
        super().__init__()
        neuron = dict(neuron or {})
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = check_heads(dim, num_heads)
        self.qkv = SpikeQKV(dim, 3, neuron)
        self.out = OutProjection(dim, dim, neuron)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        q, k, v = to_heads(self.qkv(x), 3, self.num_heads)
        o = float32_core(spiking_self_attention, q, k, v)  # [T·B, heads, N, d]; counts to N·d
        return self.out(from_heads(o, h, w), t)
