"""ANN softmax self-attention (paper Eq. 5) for the ANN twin / teacher.

``softmax(Q Kᵀ / √d) V`` with ``F.scaled_dot_product_attention``. N = H·W tokens at full
resolution is too many for N×N scores, so keys and values are computed from the input
average-pooled to at most ``n_kv`` tokens (PVT-style spatial reduction) when N is larger.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medspikeformer.attention.common import check_heads
from medspikeformer.attention.registry import register_attention
from medspikeformer.layers import fold


def kv_pool_size(h: int, w: int, n_kv: int) -> tuple[int, int]:
    """Smallest integer reduction r with ⌈h/r⌉·⌈w/r⌉ ≤ n_kv; returns the pooled (h', w')."""
    r = max(1, math.floor(math.sqrt(h * w / n_kv)))
    while math.ceil(h / r) * math.ceil(w / r) > n_kv:
        r += 1
    return math.ceil(h / r), math.ceil(w / r)


def kv_pool(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x [N, C, H, W], size)`` with a deterministic backward on CUDA
    (``adaptive_avg_pool2d``'s has none, so ``--deterministic`` refused the teacher): equal
    windows as ``avg_pool2d``; uneven ones as the pooling matrices ``P_h · x · P_wᵀ``."""
    h, w = x.shape[-2:]
    oh, ow = size
    if h % oh == 0 and w % ow == 0:
        return F.avg_pool2d(x, (h // oh, w // ow))

    def matrix(n: int, m: int) -> torch.Tensor:  # [m, n]: row i averages adaptive window i
        i = torch.arange(m, device=x.device).unsqueeze(1)
        j = torch.arange(n, device=x.device).unsqueeze(0)
        inside = (j >= (i * n) // m) & (j < ((i + 1) * n + m - 1) // m)
        return (inside / inside.sum(1, keepdim=True)).to(x.dtype)

    return matrix(h, oh) @ x @ matrix(w, ow).transpose(0, 1)


@register_attention("softmax", spiking=False, options=("n_kv",))
class SoftmaxAttention(nn.Module):
    """ANN attention. ``x [T, B, C, H, W]`` (real) → ``[T, B, C, H, W]``.

    Q = BN(Linear(x)); K, V = BN(Linear(pool(x))) with pool to ≤ ``n_kv`` tokens;
    ``SDPA`` per head; Linear(C → C) + BN. ``neuron`` is accepted for the registry's common
    signature and ignored: this attention has no spiking neurons.
    """

    def __init__(
        self, dim: int, num_heads: int = 1, n_kv: int = 1024, neuron: dict | None = None
    ) -> None:
        super().__init__()
        self.dim, self.num_heads, self.n_kv = dim, num_heads, n_kv
        self.head_dim = check_heads(dim, num_heads)
        self.q = nn.Conv2d(dim, dim, 1, bias=False)
        self.q_bn = nn.BatchNorm2d(dim)
        self.kv = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self.kv_bn = nn.BatchNorm2d(2 * dim)
        self.proj = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b, c, h, w = x.shape
        xf = fold(x)
        nh, d = self.num_heads, self.head_dim
        # Contiguous [.., N, d] operands let SDPA take its fused CPU kernel (flash attention),
        # which keeps O(N) for backward instead of the N×n_kv probability matrix.
        q = self.q_bn(self.q(xf)).view(t * b, nh, d, h * w).transpose(-1, -2).contiguous()
        if h * w > self.n_kv:
            xf = kv_pool(xf, kv_pool_size(h, w, self.n_kv))
        kv = self.kv_bn(self.kv(xf))
        m = kv.shape[-2] * kv.shape[-1]
        k, v = kv.view(t * b, 2, nh, d, m).transpose(-1, -2).unbind(1)
        o = F.scaled_dot_product_attention(q, k.contiguous(), v.contiguous())  # [T·B, heads, N, d]
        y = self.bn(self.proj(o.transpose(-1, -2).reshape(t * b, c, h, w)))
        return y.view(t, b, c, h, w)
