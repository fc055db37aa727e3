"""Spike-based Decomposed Self-Attention (ours; paper Eq. 8–9) in linear time.

Per head, with spike matrices Q, K, V ∈ {0,1}^{N×d}, Q_A = Q, Q_I = 1 − Q, K_A = K, K_I = 1 − K,
Eq. 9 reads (before the scale)

    first  = Q_A K_Aᵀ V + Q_I K_Iᵀ V        (A–A + I–I)
    second = Q_I K_Aᵀ V + Q_A K_Iᵀ V        (I–A + A–I)

There is no softmax, so the products re-associate. With S = KᵀV and S̄ = (1 − K)ᵀV = 1ᵀV − S
(d×d), s = 1ᵀS and s̄ = 1ᵀS̄ (column sums, 1×d) and D = S − S̄:

    A–A = Q S,   I–I = 1·s̄ − Q S̄,   I–A = 1·s − Q S,   A–I = Q S̄
    first = 1·s̄ + Q D,   second = 1·s − Q D

so with on/off switches a_AA, a_II, a_IA, a_AI ∈ {0,1} the output is one N×d by d×2d product

    [first, second] = 1·[a_II s̄, a_IA s] + Q [a_AA S − a_II S̄,  a_AI S̄ − a_IA S]

— O(N·d²) time and O(N·d + d²) memory; neither 1 − Q, 1 − K nor any N×N matrix is formed.

Scaling: every entry of ``first`` / ``second`` counts, over the N keys, the channels where
query and key agree (or disagree) times a value bit, so it lies in [0, N·d]. The paper divides by
√d (its √C); we additionally divide by N (mean over keys instead of sum), i.e. the default
scale is 1 / (N·√d). The result is bounded by √d and does not grow with N (test:
tests/attention/test_decomposed.py::test_magnitude_independent_of_tokens). Before the LIF a
BatchNorm over the 2C channels sets the operating point (at inference it folds into the core:
``channel_affine``); because of the 1/N its running statistics stay valid at any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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
from medspikeformer.errors import ConfigError

INTERACTIONS = ("aa", "ai", "ia", "ii")


def normalise_interactions(interactions: Iterable[str]) -> tuple[str, ...]:
    """Validate and order a set of interaction names (subset of ``aa, ai, ia, ii``)."""
    chosen = tuple(i.lower().replace("-", "") for i in interactions)
    unknown = sorted(set(chosen) - set(INTERACTIONS))
    if unknown:
        raise ConfigError(
            f"unknown attention interaction(s) {unknown}; choose from {list(INTERACTIONS)}"
        )
    return tuple(i for i in INTERACTIONS if i in chosen)


def decomposed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    interactions: Iterable[str] = INTERACTIONS,
    scale: float | None = None,
    channel_affine: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Eq. 9 in linear time. ``q, k, v``: ``[..., N, d]`` (spikes) → ``[..., N, 2d]``.

    Columns ``[:d]`` hold A–A + I–I, columns ``[d:]`` hold I–A + A–I (each term only if its
    switch is in ``interactions``), times ``scale`` (default 1 / (N·√d)).

    ``channel_affine = (a, b)``, each ``[heads, 1, 2d]``: the output becomes ``out · a + b`` per
    channel — an eval-mode BatchNorm after the core folded into it. The core is
    ``1·bias + Q M``, so ``a`` scales the columns of ``M`` and ``bias`` and ``b`` adds to ``bias``:
    the BN costs nothing (for inference; :meth:`DecomposedSpikeAttention.fold_out_norm`).
    """
    n, d = q.shape[-2], q.shape[-1]
    on = set(normalise_interactions(interactions))
    if scale is None:
        scale = 1.0 / (n * math.sqrt(d))
    s = k.transpose(-1, -2) @ v  # S = Kᵀ V, [..., d, d]
    s_bar = v.sum(dim=-2, keepdim=True) - s  # S̄ = (1 − K)ᵀ V = 1ᵀV − S
    zero = torch.zeros_like(s)
    m_first = (s if "aa" in on else zero) - (s_bar if "ii" in on else zero)
    m_second = (s_bar if "ai" in on else zero) - (s if "ia" in on else zero)
    m = torch.cat([m_first, m_second], dim=-1) * scale  # [..., d, 2d]
    ones_first = s_bar.sum(dim=-2, keepdim=True) if "ii" in on else zero[..., :1, :]
    ones_second = s.sum(dim=-2, keepdim=True) if "ia" in on else zero[..., :1, :]
    bias = torch.cat([ones_first, ones_second], dim=-1) * scale  # [..., 1, 2d]
    if channel_affine is not None:
        a, b = channel_affine
        m = m * a
        bias = torch.addcmul(b, bias, a)
    # (Mᵀ Qᵀ)ᵀ so that the channel-first transpose of the result is contiguous.
    out = torch.matmul(m.transpose(-1, -2), q.transpose(-1, -2)).add_(bias.transpose(-1, -2))
    return out.transpose(-1, -2)


def decomposed_attention_quadratic(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    interactions: Iterable[str] = INTERACTIONS,
    scale: float | None = None,
) -> torch.Tensor:
    """Literal Eq. 9 with explicit Q_A, Q_I, K_A, K_I and N×N score matrices (reference only).

    ``[..., N, d]`` → ``[..., N, 2d]``; O(N²) memory — for tests, never for models.
    """
    n, d = q.shape[-2], q.shape[-1]
    on = set(normalise_interactions(interactions))
    if scale is None:
        scale = 1.0 / (n * math.sqrt(d))
    q_a, q_i, k_a, k_i = q, 1 - q, k, 1 - k
    zero = torch.zeros(*q.shape[:-1], n, dtype=q.dtype, device=q.device)
    aa = q_a @ k_a.transpose(-1, -2) if "aa" in on else zero
    ii = q_i @ k_i.transpose(-1, -2) if "ii" in on else zero
    ia = q_i @ k_a.transpose(-1, -2) if "ia" in on else zero
    ai = q_a @ k_i.transpose(-1, -2) if "ai" in on else zero
    first = (aa + ii) @ v
    second = (ia + ai) @ v
    return torch.cat([first, second], dim=-1) * scale


@register_attention("sdsa", options=("interactions",))
class DecomposedSpikeAttention(nn.Module):
    """SDSA (ours). ``x [T, B, C, H, W]`` (real) → ``[T, B, C, H, W]``.

    LIF → Q, K, V = LIF(BN(Linear(spikes))) → per head ``decomposed_attention`` (2d channels)
    → BN → LIF → Linear(2C → C) → BN. Under autocast the core, that BN and that LIF compute in
    float32; the two Linears (1×1 convs) in the autocast dtype.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        interactions: Iterable[str] = INTERACTIONS,
        neuron: dict | None = None,
    ) -> None:
        super().__init__()
        neuron = dict(neuron or {})
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = check_heads(dim, num_heads)
        self.interactions = normalise_interactions(interactions)
        self.qkv = SpikeQKV(dim, 3, neuron)
        self.out = OutProjection(2 * dim, dim, neuron)

    @torch.no_grad()
    def fold_out_norm(self) -> None:
        """Fold the eval-mode BatchNorm after the core (``out.norm``) into the core's matrices
        (``channel_affine`` of :func:`decomposed_attention`) and drop it: for inference only
        (the statistics are frozen at their running values). Spikes after it agree with the
        unfolded module up to float rounding at the threshold."""
        norm = self.out.norm
        if not isinstance(norm, nn.BatchNorm2d):
            return
        a = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        b = norm.bias - norm.running_mean * a
        shape = (self.num_heads, 1, 2 * self.head_dim)  # channel = head · 2d + column
        self.register_buffer("norm_scale", a.reshape(shape).clone(), persistent=False)
        self.register_buffer("norm_shift", b.reshape(shape).clone(), persistent=False)
        self.out.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        q, k, v = to_heads(self.qkv(x), 3, self.num_heads)  # each [T·B, heads, N, d]
        affine = None
        if hasattr(self, "norm_scale"):
            affine = (self.norm_scale, self.norm_shift)
        # float32 under autocast: the core's output and the BN after it (see float32_core);
        # the BN then gets a float32 input and feeds the LIF in float32.
        o = float32_core(
            decomposed_attention, q, k, v, interactions=self.interactions, channel_affine=affine
        )  # [T·B, heads, N, 2d]
        o = from_heads(o, h, w)
        return self.out(o, t)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, interactions={self.interactions}"
