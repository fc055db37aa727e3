"""Attention registry: every built-in kind is registered, unknown kinds fail in one line, and a
newly registered attention is usable by the model builder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medspikeformer.attention import (
    DecomposedSpikeAttention,
    SoftmaxAttention,
    attention_spec,
    create_attention,
    list_attentions,
    register_attention,
    unregister_attention,
)
from medspikeformer.errors import ConfigError
from medspikeformer.models import ATTENTIONS, create_model
from medspikeformer.neurons import LIFNeuron


def test_builtin_kinds_are_registered() -> None:
    assert list_attentions() == ["none", "qk", "sdsa", "sdt", "softmax", "ssa"]
    assert set(ATTENTIONS) == set(list_attentions())
    assert attention_spec("softmax").spiking is False and attention_spec("none").spiking is None


def test_create_attention_builds_the_module() -> None:
    attn = create_attention("sdsa", 8, 2, {"tau": 3.0}, interactions=["aa", "ii"])
    assert isinstance(attn, DecomposedSpikeAttention)
    assert attn.interactions == ("aa", "ii") and attn.num_heads == 2
    assert all(m.tau == 3.0 for m in attn.modules() if isinstance(m, LIFNeuron))
    assert isinstance(create_attention("softmax", 8, 1, None, n_kv=16), SoftmaxAttention)
    assert isinstance(create_attention("none", 8, 1), nn.Identity)


@pytest.mark.parametrize(
    "build",
    [
        lambda: create_attention("nope", 8, 1),
        lambda: create_model("medspikeformer", attention="nope"),
        lambda: create_model("medspikeformer", attention=["sdsa"]),
    ],
)
def test_unknown_kind_is_one_line_listing_the_known_kinds(build) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    msg = str(info.value)
    assert "\n" not in msg and "unknown attention" in msg
    assert all(repr(kind) in msg for kind in list_attentions())


def test_spiking_and_real_valued_kinds_are_checked() -> None:
    with pytest.raises(ConfigError, match="real-valued"):
        create_model("medspikeformer", attention="softmax")
    with pytest.raises(ConfigError, match="'none' or 'softmax'"):
        create_model("ann", attention="sdsa")


class HalfAttention(nn.Module):
    """A test attention: halves its input (``[T, B, C, H, W]`` → same)."""

    def __init__(self, dim: int, num_heads: int = 1, neuron: dict | None = None) -> None:
        super().__init__()
        self.dim, self.num_heads, self.neuron = dim, num_heads, neuron
        self.scale = nn.Parameter(torch.full((dim, 1, 1), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


@pytest.fixture
def mine():
    register_attention("mine")(HalfAttention)
    try:
        yield
    finally:
        unregister_attention("mine")


def test_registered_attention_works_in_the_model(mine) -> None:
    model = create_model("medspikeformer", attention="mine", base_channels=8, timesteps=2)
    assert [type(a) for a in model.attn] == [HalfAttention] * 4
    assert [a.dim for a in model.attn] == model.widths
    assert model.attn[0].neuron["tau"] == model.config["tau"]
    assert "attn.0.scale" in model.state_dict()
    out = model.eval()(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 1, 32, 32)


def test_registering_twice_is_refused(mine) -> None:
    with pytest.raises(ValueError, match="twice"):
        register_attention("mine")(HalfAttention)
