"""Decomposed spike attention: linear-time form == literal quadratic Eq. 9, switches, scaling."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.attention import (
    INTERACTIONS,
    DecomposedSpikeAttention,
    decomposed_attention,
    decomposed_attention_quadratic,
)
from medspikeformer.attention.common import from_heads, to_heads
from medspikeformer.errors import ConfigError

ALL_SUBSETS = [
    c for r in range(len(INTERACTIONS) + 1) for c in itertools.combinations(INTERACTIONS, r)
]


def _spikes(*shape: int, p: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) < p).to(torch.float64)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 96),
    d=st.integers(1, 24),
    heads=st.integers(1, 4),
    batch=st.integers(1, 3),
    p=st.floats(0.05, 0.95),
    subset=st.sampled_from(ALL_SUBSETS),
    seed=st.integers(0, 2**16),
)
def test_linear_equals_quadratic(n, d, heads, batch, p, subset, seed) -> None:
    q, k, v = (_spikes(batch, heads, n, d, p=p, seed=seed + i) for i in range(3))
    fast = decomposed_attention(q, k, v, subset)
    ref = decomposed_attention_quadratic(q, k, v, subset)
    assert fast.shape == (batch, heads, n, 2 * d)
    if ref.abs().max() == 0:
        assert fast.abs().max() == 0
    else:
        assert _rel_err(fast, ref) < 1e-6


def test_each_switch_removes_exactly_its_term() -> None:
    """Quadratic reference per single interaction, checked against hand-built N×N products."""
    q, k, v = (_spikes(2, 37, 6, p=0.4, seed=i) for i in range(3))
    scale = 1 / (37 * math.sqrt(6))
    terms = {
        "aa": (q @ k.mT @ v, 0),
        "ii": ((1 - q) @ (1 - k).mT @ v, 0),
        "ia": ((1 - q) @ k.mT @ v, 1),
        "ai": (q @ (1 - k).mT @ v, 1),
    }
    for subset in ALL_SUBSETS:
        first = sum((t for name, (t, h) in terms.items() if h == 0 and name in subset), 0 * v)
        second = sum((t for name, (t, h) in terms.items() if h == 1 and name in subset), 0 * v)
        expected = torch.cat([first, second], dim=-1) * scale
        torch.testing.assert_close(decomposed_attention_quadratic(q, k, v, subset), expected)
        torch.testing.assert_close(
            decomposed_attention(q, k, v, subset), expected, rtol=1e-10, atol=1e-12
        )
    full = decomposed_attention(q, k, v)
    without_aa = decomposed_attention(q, k, v, ("ai", "ia", "ii"))
    torch.testing.assert_close(full[..., :6] - without_aa[..., :6], terms["aa"][0] * scale)


@settings(max_examples=10, deadline=None)
@given(
    n_side=st.integers(2, 9),
    heads=st.sampled_from([1, 2, 4]),
    subset=st.sampled_from(ALL_SUBSETS),
)
def test_module_equals_literal_eq9(n_side, heads, subset) -> None:
    """Whole module vs. the same spikes pushed through the quadratic reference (float64)."""
    torch.manual_seed(n_side)
    dim = 8 * heads
    attn = DecomposedSpikeAttention(dim, heads, subset).double().train()
    x = torch.randn(2, 3, dim, n_side, n_side + 1, dtype=torch.float64) * 2
    out = attn(x)
    spikes = attn.qkv(x)
    q, k, v = to_heads(spikes, 3, heads)
    assert 0.02 < q.mean() < 0.98
    ref = decomposed_attention_quadratic(q, k, v, subset)
    expected = attn.out(from_heads(ref, n_side, n_side + 1), 2)
    assert out.shape == x.shape
    assert _rel_err(out, expected) < 1e-6
    if subset:  # the attention LIF fires: the comparison is not between two zero maps
        o = attn.out.norm(from_heads(decomposed_attention(q, k, v, subset), n_side, n_side + 1))
        assert (attn.out.lif(o.view(2, 3, *o.shape[1:])) > 0).any()


def test_magnitude_independent_of_tokens() -> None:
    d = 16
    means = []
    for n in (64, 4096):
        q, k, v = (_spikes(2, n, d, p=0.3, seed=i) for i in range(3))
        o = decomposed_attention(q, k, v)
        assert o.max() <= math.sqrt(d) + 1e-9
        means.append(o.mean().item())
    assert 0.05 < means[0] < 4
    assert 0.8 < means[1] / means[0] < 1.25


def test_gradients_flow() -> None:
    attn = DecomposedSpikeAttention(16, 2)
    x = (torch.randn(2, 2, 16, 4, 4) * 3).requires_grad_(True)
    attn(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in attn.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_bad_interaction_name() -> None:
    with pytest.raises(ConfigError, match="interaction"):
        DecomposedSpikeAttention(8, 1, ("aa", "xx"))
    with pytest.raises(ConfigError, match="divisible"):
        DecomposedSpikeAttention(10, 3)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_channel_affine_is_the_eval_batchnorm_after_the_core(heads: int) -> None:
    """``channel_affine`` folds an eval BN over the core's 2C output channels (channel =
    head · 2d + column, as ``from_heads`` lays them out) into the core."""
    d, n, tb = 4, 36, 3
    q, k, v = (_spikes(tb, heads, n, d, p=0.3, seed=s) for s in (1, 2, 3))
    bn = torch.nn.BatchNorm2d(heads * 2 * d).double().eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.1, 2.0)
        bn.weight.uniform_(-1.5, 1.5)  # negative scales too
        bn.bias.uniform_(-0.5, 0.5)
        ref = bn(from_heads(decomposed_attention(q, k, v), 6, 6))
        a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        b = bn.bias - bn.running_mean * a
        shape = (heads, 1, 2 * d)
        out = decomposed_attention(q, k, v, channel_affine=(a.view(shape), b.view(shape)))
    torch.testing.assert_close(from_heads(out, 6, 6), ref, rtol=1e-5, atol=1e-6)


def test_fold_out_norm_drops_the_bn_and_keeps_the_output() -> None:
    torch.manual_seed(0)
    attn = DecomposedSpikeAttention(16, num_heads=2).eval()
    with torch.no_grad():
        for m in attn.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        x = torch.randn(2, 1, 16, 8, 8) * 2
        ref = attn(x)
        attn.fold_out_norm()
        assert isinstance(attn.out.norm, torch.nn.Identity)
        assert "norm_scale" not in attn.state_dict()  # inference-only, never saved
        out = attn(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
