"""Baseline attentions: each equals its literal (quadratic / elementwise) definition."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medspikeformer.attention import (
    QKTokenAttention,
    SoftmaxAttention,
    SpikeDrivenAttention,
    SpikingSelfAttention,
    kv_pool_size,
    spiking_self_attention,
)
from medspikeformer.attention.common import from_heads, to_heads


def _spikes(*shape: int, p: float = 0.3) -> torch.Tensor:
    return (torch.rand(*shape, dtype=torch.float64) < p).to(torch.float64)


def test_ssa_equals_quadratic() -> None:
    q, k, v = (_spikes(3, 2, 50, 8) for _ in range(3))
    ref = (q @ k.mT) @ v / (50 * math.sqrt(8))
    torch.testing.assert_close(spiking_self_attention(q, k, v), ref)


def test_ssa_module() -> None:
    attn = SpikingSelfAttention(16, 2).double().train()
    x = torch.randn(2, 2, 16, 5, 6, dtype=torch.float64) * 2
    q, k, v = to_heads(attn.qkv(x), 3, 2)
    assert 0.05 < q.mean() < 0.95
    expected = attn.out(from_heads((q @ k.mT) @ v / (30 * math.sqrt(8)), 5, 6), 2)
    torch.testing.assert_close(attn(x), expected)


def test_sdt_module_literal() -> None:
    attn = SpikeDrivenAttention(16, 2).double().train()
    x = torch.randn(2, 2, 16, 5, 6, dtype=torch.float64) * 2
    q, k, v = to_heads(attn.qkv(x), 3, 2)
    kv = (k * v).sum(dim=-2, keepdim=True)  # SUM_c: column sum over the 30 tokens
    kv = 0.5 * kv / (kv.mean(dim=-1, keepdim=True) + 1e-6)
    kv = attn.kv_lif(kv.view(2, 2, *kv.shape[1:])).flatten(0, 1)
    assert 0 < kv.mean() < 1
    o = q * kv
    assert set(o.unique().tolist()) == {0.0, 1.0}
    expected = attn.bn(attn.proj(from_heads(o, 5, 6))).view(2, 2, 16, 5, 6)
    torch.testing.assert_close(attn(x), expected)


def test_qk_module_literal() -> None:
    attn = QKTokenAttention(16, 2).double().train()
    x = torch.randn(2, 2, 16, 5, 6, dtype=torch.float64) * 2
    q, k = to_heads(attn.qk(x), 2, 2)
    a = q.sum(dim=-1, keepdim=True)  # SUM_c over the head's 8 channels
    a = 0.5 * a / (a.mean(dim=-2, keepdim=True) + 1e-6)
    a = attn.token_lif(a.view(2, 2, *a.shape[1:])).flatten(0, 1)
    assert 0 < a.mean() < 1 and (a * k).sum() > 0
    expected = attn.bn(attn.proj(from_heads(a * k, 5, 6))).view(2, 2, 16, 5, 6)
    torch.testing.assert_close(attn(x), expected)


def test_softmax_matches_manual_when_small() -> None:
    attn = SoftmaxAttention(8, 2, n_kv=64).double().eval()
    x = torch.randn(1, 2, 8, 4, 5, dtype=torch.float64)
    xf = x.flatten(0, 1)
    q = attn.q_bn(attn.q(xf)).view(2, 2, 4, 20).mT
    kv = attn.kv_bn(attn.kv(xf)).view(2, 2, 2, 4, 20).mT
    k, v = kv[:, 0], kv[:, 1]
    o = torch.softmax(q @ k.mT / 2.0, dim=-1) @ v
    expected = attn.bn(attn.proj(o.mT.reshape(2, 8, 4, 5))).view(1, 2, 8, 4, 5)
    torch.testing.assert_close(attn(x), expected)


def test_softmax_pools_keys_for_large_inputs() -> None:
    for h, w, n_kv in [(64, 64, 1024), (64, 96, 1024), (7, 300, 50), (33, 33, 1024)]:
        ph, pw = kv_pool_size(h, w, n_kv)
        assert ph * pw <= n_kv
        if h * w <= n_kv:
            assert (ph, pw) == (h, w)
    attn = SoftmaxAttention(8, 1, n_kv=16).eval()
    x = torch.randn(1, 1, 8, 16, 16)
    seen = {}

    def hook(_m, inp, _out):
        seen["kv_tokens"] = inp[0].shape[-2] * inp[0].shape[-1]

    attn.kv.register_forward_hook(hook)
    assert attn(x).shape == x.shape
    assert seen["kv_tokens"] <= 16
    xf = x.flatten(0, 1)
    pooled = F.adaptive_avg_pool2d(xf, kv_pool_size(16, 16, 16))
    assert pooled.shape[-1] * pooled.shape[-2] == seen["kv_tokens"]


def test_all_modules_shapes_and_gradients() -> None:
    for attn in (
        SpikingSelfAttention(16, 2),
        SpikeDrivenAttention(16, 2),
        QKTokenAttention(16, 2),
        SoftmaxAttention(16, 2),
    ):
        x = (torch.randn(2, 2, 16, 4, 6) * 3).requires_grad_(True)
        y = attn(x)
        assert y.shape == x.shape
        y.square().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        for name, p in attn.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), (type(attn), name)
