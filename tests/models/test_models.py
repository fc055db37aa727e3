"""Shared model tester: one test class run over every registered model (tiny configs)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import medspikeformer as msf
from medspikeformer.errors import ConfigError
from medspikeformer.models import (
    SegmentationModel,
    SegmentationOutput,
    build_teacher,
    create_model,
    list_models,
    module_facts,
    register_model,
)
from medspikeformer.models import registry as registry_mod
from tiny_models import SMALL_MSF

TINY = SMALL_MSF
TINY_UNET = {"base_channels": 4}


def tiny(name: str, **extra):
    overrides = dict(TINY_UNET if name == "unet" else TINY)
    overrides.update(extra)
    return create_model(name, **overrides)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def firing_input(model, h: int = 32, w: int = 48, batch: int = 2) -> torch.Tensor:
    """Large-amplitude input so that the first LIF layers fire."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, model.in_channels, h, w, generator=g) * 2


@pytest.mark.parametrize("name", list_models())
class TestRegisteredModel:
    def test_contract_attributes(self, name: str) -> None:
        m = tiny(name)
        assert isinstance(m, SegmentationModel)
        assert m.model_name == name
        json.dumps(m.config)
        assert isinstance(m.in_channels, int) and isinstance(m.size_divisor, int)
        assert isinstance(m.num_stage_heads, int) and m.num_stage_heads >= 0
        assert m.timesteps == (2 if m.is_spiking else 1)
        print(f"{name}: {n_params(m):,} parameters (tiny config)")

    def test_output_shape_non_square(self, name: str) -> None:
        m = tiny(name).eval()
        with torch.no_grad():
            y = m(firing_input(m, 32, 48))
        assert isinstance(y, torch.Tensor)
        assert y.shape == (2, 1, 32, 48)
        assert torch.isfinite(y).all()

    def test_train_output_type(self, name: str) -> None:
        """The contract: forward → logits in train mode too; forward_all → SegmentationOutput."""
        m = tiny(name).train()
        logits = m(firing_input(m))
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, 1, 32, 48)
        assert m.twin_config() is None if name in ("unet", "ann") else m.twin_config()
        out = m.forward_all(firing_input(m))
        assert isinstance(out, SegmentationOutput)
        assert out.logits.shape == (2, 1, 32, 48)
        assert len(out.stage_logits) == m.num_stage_heads
        for i, s in enumerate(out.stage_logits):  # one per encoder unit, halving each time
            assert s.shape == (2, 1, 32 // 2**i, 48 // 2**i)

    def test_backward_reaches_every_parameter(self, name: str) -> None:
        m = tiny(name).train()
        out = m.forward_all(firing_input(m))
        loss = out.logits.square().mean() + sum(s.square().mean() for s in out.stage_logits)
        loss.backward()
        nonzero = 0
        for pname, p in m.named_parameters():
            assert p.grad is not None, f"{name}: no gradient for {pname}"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
            nonzero += bool(p.grad.abs().sum() > 0)
        assert nonzero >= 0.9 * len(list(m.parameters()))

    def test_two_forwards_identical(self, name: str) -> None:
        m = tiny(name)
        x = firing_input(m)
        for mode in (True, False):
            m.train(mode)
            with torch.no_grad():
                a, b = m.forward_all(x).logits, m.forward_all(x).logits
            assert torch.equal(a, b)

    def test_state_dict_round_trip(self, name: str) -> None:
        m = tiny(name)
        m.train()
        with torch.no_grad():
            m(firing_input(m))  # move BN running statistics away from their init
        m.eval()
        fresh = create_model(m.model_name, **m.config).eval()
        fresh.load_state_dict(m.state_dict())
        x = firing_input(m)
        with torch.no_grad():
            assert torch.equal(m(x), fresh(x))

    def test_bad_size_raises(self, name: str) -> None:
        m = tiny(name).eval()
        with pytest.raises(ConfigError, match="divisible"):
            m(torch.randn(1, m.in_channels, m.size_divisor * 2 + 1, m.size_divisor * 2))

    def test_one_channel_input(self, name: str) -> None:
        m = tiny(name, in_channels=1).eval()
        with torch.no_grad():
            assert m(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)
        with pytest.raises(ConfigError, match="expected input"):
            m(torch.randn(1, 3, 32, 32))

    @pytest.mark.parametrize("k", [2, 3])
    def test_num_classes_shapes(self, name: str, k: int) -> None:
        """K output channels in the head, every stage head and the ANN twin; the option is kept
        in ``config`` (a checkpoint rebuilds the model) and the head is a softmax head."""
        m = tiny(name, num_classes=k).eval()
        with torch.no_grad():
            out = m.forward_all(firing_input(m, 32, 48))
        assert out.logits.shape == (2, k, 32, 48)
        assert all(s.shape[:2] == (2, k) for s in out.stage_logits)
        assert m.num_classes == k and m.config["num_classes"] == k
        assert m.activation == "softmax"
        rebuilt = create_model(name, **m.config)
        assert {n: v.shape for n, v in rebuilt.state_dict().items()} == {
            n: v.shape for n, v in m.state_dict().items()
        }
        if m.twin_config() is not None:
            teacher = build_teacher(m).eval()
            with torch.no_grad():
                t_out = teacher.forward_all(firing_input(m, 32, 48))
            assert t_out.logits.shape == (2, k, 32, 48)
            assert [s.shape for s in t_out.stage_logits] == [s.shape for s in out.stage_logits]

    def test_binary_default_leaves_config_as_before(self, name: str) -> None:
        m = tiny(name)
        assert m.num_classes == 1 and m.activation == "sigmoid"
        assert "num_classes" not in m.config and "multilabel" not in m.config
        assert tiny(name, num_classes=1).config == m.config

    def test_multilabel_is_sigmoid(self, name: str) -> None:
        m = tiny(name, num_classes=3, multilabel=True)
        assert m.activation == "sigmoid" and m.config["multilabel"] is True

    @pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
    def test_bad_num_classes(self, name: str, bad) -> None:
        with pytest.raises(ConfigError, match="num_classes"):
            tiny(name, num_classes=bad)


def test_default_parameter_count() -> None:
    m = msf.create_model("medspikeformer")
    count = n_params(m)
    print(f"medspikeformer default: {count:,} parameters")
    assert 2_610_000 <= count <= 3_190_000


def test_unknown_model_lists_names() -> None:
    with pytest.raises(ConfigError, match="medspikeformer_wo_sdsa"):
        create_model("resnet50")
    with pytest.raises(ConfigError, match="unknown MedSpikeFormer option"):
        create_model("medspikeformer", widht=3)


def test_overrides_and_ablation_configs() -> None:
    assert create_model("medspikeformer", timesteps=1, **{"base_channels": 8}).timesteps == 1
    assert create_model("medspikeformer_wo_aa").config["interactions"] == ["ai", "ia", "ii"]
    assert create_model("medspikeformer_wo_ii").config["interactions"] == ["aa", "ai", "ia"]
    assert create_model("medspikeformer_wo_sdsa").config["attention"] == "none"
    m = create_model("medspikeformer", num_units=3, base_channels=8)
    assert m.size_divisor == 4 and len(m.stage_heads) == 3
    with pytest.raises(ConfigError, match="softmax"):
        create_model("medspikeformer", attention="softmax")


def test_forward_all_attention_maps() -> None:
    m = tiny("medspikeformer")
    out = m.forward_all(firing_input(m))
    assert out.attention is not None and len(out.attention) == 4
    for i, a in enumerate(out.attention):
        assert a.shape == (2, 8 * 2**i, 32 // 2**i, 48 // 2**i)
    assert tiny("medspikeformer_wo_sdsa").forward_all(firing_input(m)).attention is None


def test_eval_forward_runs_no_stage_heads() -> None:
    m = tiny("medspikeformer").eval()
    calls = []
    for head in m.stage_heads:
        head.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        m(firing_input(m))
    assert calls == []


def test_build_teacher_is_ann_twin() -> None:
    student = create_model("medspikeformer", base_channels=8, in_channels=1, timesteps=4)
    teacher = build_teacher(student)
    assert not teacher.is_spiking and teacher.timesteps == 1
    assert teacher.widths == student.widths and teacher.in_channels == 1
    assert teacher.config["attention"] == "softmax"
    assert not any(isinstance(mod, msf.neurons.LIFNeuron) for mod in teacher.modules())
    assert teacher.train()(torch.randn(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    with pytest.raises(ConfigError):
        build_teacher(create_model("unet"))


def test_ablation_parameter_counts_differ() -> None:
    full = n_params(create_model("medspikeformer"))
    wo_sdsa = n_params(create_model("medspikeformer_wo_sdsa"))
    wo_sc = n_params(create_model("medspikeformer_wo_sc"))
    print(f"full {full:,}  w/o SDSA {wo_sdsa:,}  w/o SC {wo_sc:,}")
    assert wo_sdsa < full and wo_sc < full


@settings(max_examples=8, deadline=None)
@given(
    units=st.integers(1, 4),
    hm=st.integers(1, 3),
    wm=st.integers(1, 3),
    in_ch=st.sampled_from([1, 3]),
)
def test_any_divisible_size(units: int, hm: int, wm: int, in_ch: int) -> None:
    m = create_model(
        "medspikeformer", base_channels=4, timesteps=1, num_units=units, in_channels=in_ch
    ).eval()
    h, w = m.size_divisor * hm * 2, m.size_divisor * wm * 2
    with torch.no_grad():
        assert m(torch.randn(1, in_ch, h, w)).shape == (1, 1, h, w)


@pytest.mark.parametrize(
    "bad",
    [{"timesteps": 0}, {"base_channels": -1}, {"attention": "linear"}, {"num_units": "4"}],
)
def test_bad_config_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        create_model("medspikeformer", **bad)


def test_unet_ignores_speed_only_options_but_not_unknown_ones() -> None:
    a = create_model("unet", timesteps=4, compile_neurons=True, checkpoint_attention="auto")
    assert a.timesteps == 1 and "compile_neurons" not in a.config
    with pytest.raises(ConfigError, match="unknown unet option"):
        create_model("unet", attention="sdsa")


def test_head_gain_scales_logits_and_keeps_weights() -> None:
    """head_gain multiplies the logits exactly, adds no parameter and is validated."""
    torch.manual_seed(0)
    base = create_model("medspikeformer", base_channels=4, num_units=2, timesteps=2).eval()
    gained = create_model(
        "medspikeformer", base_channels=4, num_units=2, timesteps=2, head_gain=4.0
    ).eval()
    assert list(gained.state_dict()) == list(base.state_dict())
    gained.load_state_dict(base.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(gained(x), base(x) * 4.0)
    assert base.config["head_gain"] == 1.0 and "gain" not in repr(base.head)
    assert build_teacher(gained).config["head_gain"] == 1.0  # the ReLU twin needs none
    for bad in (0, -1.0, "4", True):
        with pytest.raises(ConfigError, match="head_gain must be a positive number"):
            create_model("medspikeformer", head_gain=bad)


def test_the_stage_head_count_is_the_models_own() -> None:
    """The trainer aligns ``num_stage_heads`` maps: MedSpikeFormer has one per encoder unit, the
    U-Net none (read from the model, not from one model's config)."""
    assert tiny("medspikeformer", num_units=3).num_stage_heads == 3
    assert tiny("unet").num_stage_heads == 0


def test_create_model_refuses_a_builder_that_returns_no_segmentation_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry_mod, "_REGISTRY", dict(registry_mod._REGISTRY))

    @register_model
    def not_a_model(**overrides):
        return torch.nn.Linear(2, 2)

    with pytest.raises(
        TypeError, match=r"^the builder of model 'not_a_model' returned Linear, not"
    ):
        create_model("not_a_model")


def test_module_facts_of_a_bare_module_and_of_a_model() -> None:
    bare = module_facts(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1)))
    assert (bare.model_name, bare.size_divisor, bare.timesteps) == ("Sequential", 1, 1)
    assert bare.is_spiking is None and bare.in_channels is None and bare.config == {}
    declared = torch.nn.Sequential()
    declared.timesteps, declared.is_spiking, declared.in_channels = 2, True, 1
    facts = module_facts(declared)  # the profiler's documented use of a bare module
    assert (facts.timesteps, facts.is_spiking, facts.in_channels) == (2, True, 1)
    m = tiny("medspikeformer")
    facts = module_facts(m)
    assert (facts.model_name, facts.in_channels, facts.timesteps) == (
        "medspikeformer",
        m.in_channels,
        m.timesteps,
    )
    assert facts.is_spiking is True and facts.size_divisor == m.size_divisor


CONTRACT = {"model_name", "config", "in_channels", "num_classes", "multilabel", "size_divisor"}
CONTRACT |= {"timesteps", "is_spiking", "num_stage_heads", "forward_all", "activation"}


def test_no_code_outside_models_guesses_the_contract_with_getattr() -> None:
    """``getattr(x, "<contract member>", default)`` outside ``models/`` would hide a model that
    breaks the contract; such code reads the member, or ``module_facts`` for a bare module."""
    import ast
    from pathlib import Path

    src = Path(msf.__file__).resolve().parent
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.parent.name == "models" and path.parent.parent == src:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) == 3
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in CONTRACT
            ):
                found.append(f"{path.relative_to(src)}:{node.lineno}")
    assert not found, found
