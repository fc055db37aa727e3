"""Q-K token attention of QKFormer (Zhou et al., 2024), the ``qk`` baseline.

Per head: ``A_t = SN(SUM_c Q)`` (one spike per token, summed over the head's channels) and
``out = A_t ⊙ K`` — binary, linear in N, no V. As in the original SN has threshold 0.5; it is fed
each token's channel sum relative to the average token of the head, × 0.5 (at the first timestep
a token fires iff its Q activity is at least the average; scale-free in N and d). Then
Linear(C → C) + BN on the binary output.
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


def token_summary(q: torch.Tensor) -> torch.Tensor:
    """SUM_c Q per token, relative to the mean token, × 0.5: ``[..., N, d]`` → ``[..., N, 1]``."""
    return 0.5 * relative_to_mean(q.sum(dim=-1, keepdim=True), dim=-2)


@register_attention("qk")
class QKTokenAttention(nn.Module):
    """QKFormer token attention. ``x [T, B, C, H, W]`` (real) → ``[T, B, C, H, W]``."""

    def __init__(self, dim: int, num_heads: int = 1, neuron: dict | None = None) -> None:
        super().__init__()
        neuron = dict(neuron or {})
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = check_heads(dim, num_heads)
        self.qk = SpikeQKV(dim, 2, neuron)
        self.token_lif = create_neuron({**neuron, "v_threshold": 0.5}, binary=True)
        self.proj = SpikeSavingConv2d(dim, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = x.shape
        q, k = to_heads(self.qk(x), 2, self.num_heads)  # [T·B, heads, N, d]
        a = float32_core(token_summary, q)  # [T·B, heads, N, 1]; a ratio fed to a threshold
        a = self.token_lif(a.view(t, b, *a.shape[1:])).flatten(0, 1)
        o = (a * k).transpose(-1, -2).reshape(t * b, c, h, w)  # binary
        y = self.bn(self.proj(fold(o.view(t, b, c, h, w))))
        return y.view(t, b, c, h, w)
