"""Memory levers change nothing numerically: attention checkpointing and bool-saving spike convs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medspikeformer.models import create_model
from medspikeformer.models.spike_conv import SpikeSavingConv2d
from tiny_models import SMALL_MSF


def _grads_and_stats(model: nn.Module, x: torch.Tensor):
    out = model.forward_all(x)
    loss = out.logits.square().mean() + sum(s.square().mean() for s in out.stage_logits)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return out.logits.detach(), grads, {k: v.clone() for k, v in model.state_dict().items()}


def test_attention_checkpointing_is_exact() -> None:
    torch.manual_seed(3)
    a = create_model("medspikeformer", **SMALL_MSF, checkpoint_attention=True)
    b = create_model("medspikeformer", **SMALL_MSF, checkpoint_attention=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32) * 2
    la, ga, sa = _grads_and_stats(a.train(), x)
    lb, gb, sb = _grads_and_stats(b.train(), x)
    assert torch.equal(la, lb)
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-5, atol=1e-7, msg=name)
    for key in sa:  # BN running statistics updated exactly once
        assert torch.equal(sa[key], sb[key]), key


def test_auto_checkpointing_only_for_large_inputs(monkeypatch) -> None:
    import importlib

    from medspikeformer.errors import ConfigError

    # the module (the package attribute of that name is the registered builder function)
    msf_mod = importlib.import_module("medspikeformer.models.medspikeformer")

    model = create_model("medspikeformer", base_channels=4, timesteps=2).train()
    assert model.config["checkpoint_attention"] == "auto"
    monkeypatch.setattr(msf_mod, "AUTO_CHECKPOINT_ELEMENTS", 2 * 2 * 16 * 16)
    small, large = torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 32, 16)
    assert not model.use_checkpoint(small) and model.use_checkpoint(large)
    with torch.no_grad():
        assert not model.use_checkpoint(large)
    assert not model.eval().use_checkpoint(large)
    forced = create_model("medspikeformer", base_channels=4, checkpoint_attention=True).train()
    assert forced.use_checkpoint(small)
    calls = []
    monkeypatch.setattr(msf_mod, "checkpointed", lambda m, f: calls.append(1) or m(f))
    model.train()(large)
    assert len(calls) == len(model.attn)
    calls.clear()
    model(small)
    assert calls == []
    with pytest.raises(ConfigError, match="checkpoint_attention"):
        create_model("medspikeformer", checkpoint_attention="sometimes")


def test_auto_recomputation_on_a_gpu_looks_at_its_memory() -> None:
    """The paper recipe (T = 4, batch 8, 256², C = 32) recomputes on a CPU but not on an 80 GB
    GPU; a 16 GB card still recomputes it; a small input never does."""
    from medspikeformer.models.medspikeformer import recompute_attention

    paper = 4 * 8 * 256 * 256
    assert recompute_attention(paper, 32, None)
    assert not recompute_attention(paper, 32, 80 * 2**30)
    assert recompute_attention(paper, 32, 16 * 2**30)
    assert recompute_attention(4 * paper, 32, 80 * 2**30)  # batch 32 fills the big card too
    assert not recompute_attention(2 * 64 * 64, 32, None)
    assert not recompute_attention(2 * 64 * 64, 32, 8 * 2**30)


def test_spike_saving_conv_matches_conv2d() -> None:
    torch.manual_seed(0)
    ref = nn.Conv2d(4, 6, 3, 2, 1)
    ours = SpikeSavingConv2d(4, 6, 3, 2, 1)
    ours.load_state_dict(ref.state_dict())
    s = (torch.rand(2, 4, 9, 8) < 0.3).float().requires_grad_(True)
    s2 = s.detach().clone().requires_grad_(True)
    g = torch.randn(2, 6, 5, 4)
    (ref(s) * g).sum().backward()
    (ours(s2) * g).sum().backward()
    assert torch.equal(ref(s), ours(s2))
    torch.testing.assert_close(s.grad, s2.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(ref.weight.grad, ours.weight.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(ref.bias.grad, ours.bias.grad, rtol=0, atol=1e-6)


def test_attention_checkpointing_traces_under_torch_compile() -> None:
    """Recomputation inside ``torch.compile`` (Dynamo cannot trace a ``context_fn``): same
    logits, gradients and BN statistics (updated once) as eager recomputation."""
    from tiny_models import TINY_MSF

    torch.manual_seed(5)
    a = create_model("medspikeformer", **TINY_MSF, checkpoint_attention=True).train()
    b = create_model("medspikeformer", **TINY_MSF, checkpoint_attention=True).train()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 16, 16) * 2
    la, ga, sa = _grads_and_stats(a, x)
    torch._dynamo.reset()
    compiled = torch.compile(lambda inp: b.forward_all(inp), backend="aot_eager")
    out = compiled(x)
    loss = out.logits.square().mean() + sum(s.square().mean() for s in out.stage_logits)
    loss.backward()
    torch.testing.assert_close(out.logits.detach(), la)
    for name, p in b.named_parameters():
        torch.testing.assert_close(p.grad, ga[name], rtol=1e-4, atol=1e-6, msg=name)
    for key, value in b.state_dict().items():
        torch.testing.assert_close(value, sa[key], msg=key)
