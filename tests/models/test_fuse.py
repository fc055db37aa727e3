"""BN folding for inference: the fused model computes what the unfused one computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medspikeformer.models import create_model
from medspikeformer.models.fuse import (
    find_conv_bn_pairs,
    fuse_for_inference,
    optimize_for_inference,
)


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters (fresh BNs fold to the identity)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.2)


def _count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("ann", {"base_channels": 8}),
        ("unet", {"base_channels": 4}),
    ],
)
def test_fused_real_valued_models_match(name: str, overrides: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    _randomise_bn(model)
    model.eval()
    x = torch.randn(2, model.in_channels, 32, 48)
    with torch.no_grad():
        ref = model(x)
        fused = fuse_for_inference(model)
        out = fused(x)
    assert len(fused.fused_pairs) > 0
    assert _count(fused, nn.BatchNorm2d) == _count(model, nn.BatchNorm2d) - len(fused.fused_pairs)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_fused_spiking_model_matches() -> None:
    """Spikes are thresholded: fused and unfused agree except where rounding flips a tie."""
    torch.manual_seed(0)
    model = create_model("medspikeformer", base_channels=8, timesteps=2)
    _randomise_bn(model)
    model.eval()
    x = torch.randn(1, 3, 32, 32) * 2
    with torch.no_grad():
        ref = model(x)
        out = fuse_for_inference(model)(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_every_conv_then_bn_pair_is_found() -> None:
    """Stem, spike convs and attention projections are conv → BN; each is found exactly once."""
    model = create_model("medspikeformer", base_channels=8, timesteps=2)
    pairs = dict(find_conv_bn_pairs(model))
    assert pairs["stem.conv"] == "stem.bn"
    assert pairs["pe_sc.0.conv"] == "pe_sc.0.bn"
    assert pairs["attn.0.qkv.proj"] == "attn.0.qkv.bn"
    assert len(set(pairs.values())) == len(pairs)
    # a BN fed by something other than a conv (the attention-map norm before a LIF) stays
    bns = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for bn in bns - set(pairs.values()):
        assert not bn.endswith(("qkv.bn", "stem.bn")), bn


def test_input_model_untouched_and_training_mode_restored() -> None:
    model = create_model("medspikeformer", base_channels=8, timesteps=2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model)
    assert model.training and not fused.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert _count(model, nn.BatchNorm2d) > _count(fused, nn.BatchNorm2d)


def test_residual_bn_not_folded() -> None:
    """A BN whose input is a sum, not a conv output, must not be folded."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.conv(x) + x)

    net = Net()
    assert find_conv_bn_pairs(net, torch.randn(1, 2, 8, 8)) == []


def test_optimized_for_inference_folds_bn_and_compiles_every_lif() -> None:
    """The inference default: no BN left where a conv feeds it, every LIF on the fused backend,
    the input model untouched, and the same spikes (logits to rounding) as the model as trained."""
    from medspikeformer.neurons import LIFNeuron

    torch.manual_seed(0)
    model = create_model("medspikeformer", base_channels=8, timesteps=2)
    _randomise_bn(model)
    model.eval()
    fast = optimize_for_inference(model)
    assert fast.fused_pairs
    names = {n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert not names & {bn for _, bn in fast.fused_pairs}
    lifs = [m for m in fast.modules() if isinstance(m, LIFNeuron)]
    assert lifs and all(m.backend == "fused" for m in lifs)
    assert all(m.backend == "eager" for m in model.modules() if isinstance(m, LIFNeuron))
    x = torch.randn(1, 3, 32, 32) * 2
    with torch.no_grad():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-4)
