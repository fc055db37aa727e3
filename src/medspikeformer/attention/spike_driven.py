"""Spike-driven Self-Attention of Spike-driven Transformer v1 (Yao et al., 2023), ``sdt``.

Per head: ``SDSA_v1(Q, K, V) = Q ⊙ SN(SUM_c(K ⊙ V))`` where SUM_c is the column sum over the N
tokens (one value per channel) and SN a spiking neuron. The output is binary, so the following
Linear(C → C) + BN sees spikes without another LIF. As in the original, SN has threshold 0.5.
The raw token sum grows with N (SN fires as soon as one token has k = v = 1, whatever N is), so SN
is fed the per-channel count *relative to the head's average channel*, times 0.5: at the first
timestep a channel fires iff its K ⊙ V count is at least the head average — scale-free in N and
independent of the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from medspikeformer.attention.common import (
    SpikeQKV,
    check_heads,
    float32_core,
    relative_to_mean,
    to_heads,
)
from medspikeformer.attention.registry import register_attention
from medspikeformer.layers import SpikeSavingConv2d, fold
from medspikeformer.neurons import create_neuron


def kv_channel_summary(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SUM_c(K ⊙ V) over tokens, relative to the head's mean channel, × 0.5.

    ``[..., N, d]`` → ``[..., 1, d]``.
    """
    return 0.5 * relative_to_mean((k * v).sum(dim=-2, keepdim=True), dim=-1)


@register_attention("sdt")
class SpikeDrivenAttention(nn.Module):
    """SDT v1 attention. ``x [T, B, C, H, W]`` (real) → ``[T, B, C, H, W]``."""

    def __init__(self, dim: int, num_heads: int = 1, neuron: dict | None = None) -> None:
        super().__init__()
        neuron = dict(neuron or {})
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = check_heads(dim, num_heads)
        self.qkv = SpikeQKV(dim, 3, neuron)
        self.kv_lif = create_neuron({**neuron, "v_threshold": 0.5}, binary=True)
        self.proj = SpikeSavingConv2d(dim, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = x.shape
        q, k, v = to_heads(self.qkv(x), 3, self.num_heads)  # [T·B, heads, N, d]
        kv = float32_core(kv_channel_summary, k, v)  # [T·B, heads, 1, d]; counts up to N
        kv = self.kv_lif(kv.view(t, b, *kv.shape[1:])).flatten(0, 1)
        o = (q * kv).transpose(-1, -2).reshape(t * b, c, h, w)  # binary
        y = self.bn(self.proj(fold(o.view(t, b, c, h, w))))
        return y.view(t, b, c, h, w)
