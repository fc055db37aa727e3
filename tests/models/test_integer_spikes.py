"""Integer spikes in the models: every spiking model takes either neuron and either head, the
binary expansion computes the integer network's logits from 0/1 events, the spike check and the
profiler count those events, ONNX exports both neurons, and twin initialisation copies the twin."""

from __future__ import annotations

import pytest
import torch

from medspikeformer import create_model
from medspikeformer.analysis.profile import profile_model
from medspikeformer.analysis.spike_check import check_spike_driven
from medspikeformer.errors import CheckpointError, ConfigError
from medspikeformer.models import PAPER_NETWORK, build_teacher
from medspikeformer.models.expansion import ExpandedConv, binary_expansion
from medspikeformer.models.twin_init import transfer_twin_weights, twin_matches
from medspikeformer.neurons import IntegerLIFNeuron, LIFNeuron
from tiny_models import TINY_MSF

SPIKING = ["medspikeformer", "ssa", "sdt", "qk"]


def _calibrated(name: str, **options) -> torch.nn.Module:
    """A model whose BatchNorms saw two batches (so that its neurons fire), in eval mode."""
    torch.manual_seed(0)
    model = create_model(name, **{**TINY_MSF, **options})
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16))
        model(torch.randn(4, 3, 16, 16))
    return model.eval()


@pytest.mark.parametrize("name", SPIKING)
@pytest.mark.parametrize("timesteps", [1, 2])
def test_every_spiking_model_takes_the_integer_neuron(name: str, timesteps: int) -> None:
    model = create_model(
        name, **{**TINY_MSF, "neuron": "ilif", "levels": 3, "timesteps": timesteps}
    )
    neurons = [m for m in model.modules() if isinstance(m, LIFNeuron)]
    integer = [m for m in neurons if isinstance(m, IntegerLIFNeuron)]
    assert integer and all(m.levels == 3 for m in integer)
    # the attention's Q/K/V (and token masks) stay binary: Eq. 9 needs 1 − Q
    binary = {n for n, m in model.named_modules() if type(m) is LIFNeuron}
    assert binary and all(".qkv.lif" in n or ".qk.lif" in n or "_lif" in n for n in binary)
    x = torch.randn(2, 3, 16, 16, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_integer_spikes_are_the_default_and_the_paper_network_one_mapping_away() -> None:
    model = create_model("medspikeformer", **TINY_MSF)
    assert model.config["neuron"] == "ilif" and model.config["head"] == "spike"
    assert any(isinstance(m, IntegerLIFNeuron) for m in model.modules())
    paper = create_model("medspikeformer", **TINY_MSF, **PAPER_NETWORK)
    assert paper.config["neuron"] == "lif" and paper.config["head"] == "spike"
    assert all(type(m) is LIFNeuron for m in paper.modules() if isinstance(m, LIFNeuron))
    assert not any(isinstance(m, IntegerLIFNeuron) for m in paper.modules())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"neuron": "blif"}, "unknown neuron 'blif'; choose from lif, ilif"),
        ({"head": "dense"}, "unknown head 'dense'; choose from spike, real"),
        ({"levels": 0}, "levels must be a positive integer"),
    ],
)
def test_bad_neuron_options_are_one_line_errors(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model("medspikeformer", **{**TINY_MSF, **bad})


@pytest.mark.parametrize("name", SPIKING)
@pytest.mark.parametrize("head", ["spike", "real"])
def test_binary_expansion_gives_the_integer_networks_logits(name: str, head: str) -> None:
    model = _calibrated(name, neuron="ilif", levels=4, head=head)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        integer = model(x)
        with binary_expansion(model) as expanded:
            assert expanded > 0
            assert any(isinstance(m, ExpandedConv) for m in model.modules())
            events = model(x)
    assert not any(isinstance(m, ExpandedConv) for m in model.modules())  # restored
    torch.testing.assert_close(events, integer, rtol=1e-5, atol=1e-5)


def test_expanded_layers_see_only_binary_spikes_and_counts_did_occur() -> None:
    model = _calibrated("medspikeformer", neuron="ilif", levels=4)
    x = torch.randn(2, 3, 16, 16)
    counts = check_spike_driven(model, x, allow_counts=True)
    assert counts.ok
    assert max(r.max for r in counts.layers if not r.first and not r.training_only) > 1
    assert not check_spike_driven(model, x).ok  # counts are not 0/1 spikes
    with binary_expansion(model):
        report = check_spike_driven(model, x)
    assert report.ok, report.violations
    assert all(r.max <= 1 for r in report.layers if not r.first and not r.training_only)


def test_the_real_head_is_named_as_not_spike_driven() -> None:
    model = _calibrated("medspikeformer", neuron="ilif", head="real")
    with binary_expansion(model):
        report = check_spike_driven(model, torch.randn(2, 3, 16, 16))
    assert sorted(v.split()[0] for v in report.violations) == ["head.conv", "head.out"]


def test_profile_counts_a_count_of_v_as_v_events() -> None:
    """SOPs of the integer network equal those of its binary expansion (where each plane is a
    call of 0/1 events), and exceed what counting non-zero inputs would give."""
    model = _calibrated("medspikeformer", neuron="ilif", levels=4)
    x = torch.randn(1, 3, 16, 16)
    integer = profile_model(model, size=16, inputs=x)
    with binary_expansion(model):
        events = profile_model(model, size=16, inputs=x)
    assert integer.sops > 0
    assert events.sops == pytest.approx(integer.sops, rel=1e-6)
    assert events.energy_pj == pytest.approx(integer.energy_pj, rel=1e-6)


@pytest.mark.parametrize("neuron", ["lif", "ilif"])
def test_onnx_export_of_both_neurons(tmp_path, neuron: str) -> None:
    pytest.importorskip("onnxruntime")
    from medspikeformer.inference.export import export_onnx

    model = _calibrated("medspikeformer", neuron=neuron, levels=4)
    report = export_onnx(model, tmp_path / "m.onnx", size=(16, 16), verify=True)
    assert report.max_abs_error is not None and report.max_abs_error < 1e-4


def test_twin_initialisation_copies_every_shared_tensor() -> None:
    student = create_model("medspikeformer", **{**TINY_MSF, "neuron": "ilif"})
    twin = build_teacher(student)
    assert twin_matches(student, "ann", twin.config)
    assert not twin_matches(student, "medspikeformer", twin.config)
    assert not twin_matches(student, "ann", {**twin.config, "base_channels": 16})
    torch.manual_seed(3)
    for p in twin.parameters():
        p.data.normal_()
    moved = transfer_twin_weights(student, twin.state_dict(), source="twin.pt")
    own, theirs = student.state_dict(), twin.state_dict()
    assert moved.copied and all(torch.equal(own[n], theirs[n]) for n in moved.copied)
    assert all(n.startswith("attn.") for n in moved.kept)  # softmax vs spiking attention


@pytest.mark.parametrize("attention", ["sdsa", "ssa", "sdt", "qk"])
def test_the_new_attention_blocks_start_as_the_identity_of_their_residual(attention: str) -> None:
    """After the transfer the student computes what the twin's attention-free network would
    with the same neurons: each block adds 0 (Eq. 10 with the last BN's γ = 0)."""
    student = create_model("medspikeformer", **{**TINY_MSF, "attention": attention})
    twin = build_teacher(student)
    moved = transfer_twin_weights(student, twin.state_dict(), source="twin.pt")
    assert moved.identity == tuple(f"attn.{i}" for i in range(len(student.attn)))
    student.eval()
    x = torch.randn(2, TINY_MSF.get("in_channels", 3), 16, 16)
    captured: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, i, o: captured.append(o)) for b in student.attn]
    with torch.no_grad():
        student(x)
    for h in hooks:
        h.remove()
    assert len(captured) == len(student.attn)
    assert all(float(o.abs().max()) == 0.0 for o in captured)
    # γ is a parameter with a gradient: the blocks still learn
    student.train()
    student(x).sum().backward()
    norms = [m for m in student.attn[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms[-1].weight.grad is not None and norms[-1].weight.grad.abs().sum() > 0


def test_a_twin_that_has_nothing_to_transfer_is_refused() -> None:
    student = create_model("medspikeformer", **{**TINY_MSF, "neuron": "ilif"})
    with pytest.raises(CheckpointError, match="no layer of it fits"):
        transfer_twin_weights(student, {"x.weight": torch.zeros(1)}, source="other.pt")
