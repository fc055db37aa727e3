"""The teacher's key/value pooling: adaptive average pooling with a deterministic backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.attention import softmax as softmax_mod
from medspikeformer.attention.softmax import SoftmaxAttention, kv_pool


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 24), w=st.integers(1, 24), oh=st.integers(1, 24), ow=st.integers(1, 24))
def test_kv_pool_equals_adaptive_average_pooling(h: int, w: int, oh: int, ow: int) -> None:
    oh, ow = min(oh, h), min(ow, w)
    x = torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True)
    y = kv_pool(x, (oh, ow))
    ref = F.adaptive_avg_pool2d(x, (oh, ow))
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(ref)
    (gx,) = torch.autograd.grad(y, x, g)
    (gr,) = torch.autograd.grad(ref, x, g)
    torch.testing.assert_close(gx, gr)


@pytest.mark.parametrize("size", [32, 40])
def test_softmax_attention_does_not_use_adaptive_pooling(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``adaptive_avg_pool2d`` has no deterministic CUDA backward: the teacher must not call it
    (even and uneven pooling windows)."""

    def refuse(*args, **kwargs):
        raise RuntimeError("adaptive_avg_pool2d_backward_cuda does not have a deterministic kernel")

    monkeypatch.setattr(softmax_mod.F, "adaptive_avg_pool2d", refuse)
    attn = SoftmaxAttention(8, num_heads=2, n_kv=64)
    x = torch.randn(1, 2, 8, size, size, requires_grad=True)
    attn(x).sum().backward()
    assert x.grad is not None
