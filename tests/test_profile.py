"""Profiler: FLOPs, params, firing rates, SOPs and energy against hand computations; the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn

from medspikeformer import create_model
from medspikeformer.cli import main
from medspikeformer.errors import ConfigError
from medspikeformer.neurons import LIFNeuron
from medspikeformer.profile import E_AC_PJ, E_MAC_PJ, energy_pj, profile_model
from tiny_models import SMALL_MSF


class OneConv(nn.Module):
    in_channels = 3
    is_spiking = False
    timesteps = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_single_conv_flops_and_params() -> None:
    m = OneConv()
    r = profile_model(m, size=(16, 12), batch=2)
    h_out, w_out = 8, 6
    macs = 2 * 8 * h_out * w_out * 3 * 3 * 3  # B · C_out · H_out · W_out · C_in · k · k
    assert r.macs == macs
    assert r.flops == 2 * macs  # FlopCounterMode: 2 FLOPs per MAC
    assert r.params == r.params_all == sum(p.numel() for p in m.parameters()) == 8 * 27 + 8
    assert r.layers[0].name == "conv" and r.layers[0].macs == macs
    assert not r.layers[0].spike_input
    assert r.energy_pj == pytest.approx(E_MAC_PJ * macs)  # ANN: every MAC at E_MAC
    assert r.sops == 0


class TinySNN(nn.Module):
    """image → conv1 (real input) → LIF → conv2 (spikes) → LIF → mean over T; plus a stage head."""

    in_channels = 1
    is_spiking = True
    timesteps = 3
    size_divisor = 2

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 1, bias=False)
        self.lif1 = LIFNeuron()
        self.conv2 = nn.Conv2d(2, 1, 1, bias=False)
        self.lif2 = LIFNeuron()
        self.stage_head = nn.Conv2d(2, 1, 1)  # training only
        with torch.no_grad():
            self.conv1.weight.copy_(torch.tensor([1.5, 0.7]).view(2, 1, 1, 1))
            self.conv2.weight.copy_(torch.tensor([0.6, 0.6]).view(1, 2, 1, 1))

    def forward(self, x: torch.Tensor):
        t, b = self.timesteps, x.shape[0]
        y = self.conv1(x.unsqueeze(0).expand(t, *x.shape).flatten(0, 1))
        s1 = self.lif1(y.view(t, b, *y.shape[1:]))
        z = self.conv2(s1.flatten(0, 1))
        s2 = self.lif2(z.view(t, b, *z.shape[1:]))
        out = s2.mean(0)
        if self.training:
            return out, self.stage_head(s1.mean(0))
        return out


def _hand_lif(x: torch.Tensor, tau: float = 2.0, vth: float = 1.0) -> torch.Tensor:
    h, out = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        u = h * (1 - 1 / tau) + x[t]
        s = (u >= vth).float()
        out.append(s)
        h = u - s * vth
    return torch.stack(out)


def test_firing_rates_sops_energy_by_hand() -> None:
    m = TinySNN()
    b, hw, t = 2, (4, 6), 3
    r = profile_model(m, size=hw, batch=b, seed=7)
    x = torch.randn(b, 1, *hw, generator=torch.Generator().manual_seed(7))
    w1 = torch.tensor([1.5, 0.7]).view(1, 1, 2, 1, 1)
    s1 = _hand_lif((x.unsqueeze(0) * w1).expand(t, b, 2, *hw))
    z = 0.6 * s1.sum(2, keepdim=True)
    s2 = _hand_lif(z)
    rates = {n.name: n.firing_rate for n in r.neurons}
    assert rates["lif1"] == pytest.approx(s1.mean().item())
    assert rates["lif2"] == pytest.approx(s2.mean().item())
    assert 0 < rates["lif1"] < 1 and 0 <= rates["lif2"] <= 1

    layers = {layer.name: layer for layer in r.layers}
    pixels = b * hw[0] * hw[1]
    macs1, macs2 = t * pixels * 1 * 2, t * pixels * 2 * 1  # T folded into the batch
    assert layers["conv1"].macs == macs1 and not layers["conv1"].spike_input
    assert layers["conv2"].macs == macs2 and layers["conv2"].spike_input
    assert layers["conv2"].input_firing_rate == pytest.approx(s1.mean().item())
    sops = s1.mean().item() * macs2  # = fr × T × MACs per timestep
    assert r.sops == pytest.approx(sops)
    assert r.energy_pj == pytest.approx(E_MAC_PJ * macs1 + E_AC_PJ * sops)
    assert r.energy_pj == pytest.approx(energy_pj(macs1, sops))
    assert r.flops_per_timestep == pytest.approx(r.flops / t)

    # the stage head never runs at inference: excluded from params, listed
    assert r.params == 2 + 2
    assert r.params_all == 2 + 2 + 2 + 1
    assert r.excluded_modules == ["stage_head"]
    assert m.training  # the train/eval mode is restored


def test_energy_hand_example() -> None:
    # 1 M real-valued MACs and 10 M SOPs at 45 nm: 4.6 µJ + 9 µJ
    assert energy_pj(1e6, 1e7) == pytest.approx(4.6e6 + 9.0e6)
    assert energy_pj(2, 3, e_mac=1.0, e_ac=0.5) == pytest.approx(3.5)


class SpikeMatmul(nn.Module):
    """A functional product of a 0/1 matrix with a real one, outside any nn.Linear."""

    is_spiking = True
    in_channels = 1

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(5, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes = (x.flatten(1) > 0).float().view(-1, 4, 5)  # [B·H·W/20, 4, 5]
        return spikes @ self.w


def test_functional_matmul_counted_as_sops() -> None:
    r = profile_model(SpikeMatmul(), size=(4, 5), batch=3, seed=1)
    x = torch.randn(3, 1, 4, 5, generator=torch.Generator().manual_seed(1))
    fr = (x > 0).float().mean().item()
    (layer,) = r.layers
    assert layer.kind.startswith("matmul")
    macs = 3 * 4 * 5 * 3
    assert layer.macs == macs == r.macs
    assert layer.spike_input and layer.input_firing_rate == pytest.approx(fr)
    assert r.sops == pytest.approx(fr * macs)
    assert r.other_macs == 0
    assert r.energy_pj == pytest.approx(E_AC_PJ * fr * macs)


def test_errors() -> None:
    m = TinySNN()
    with pytest.raises(ConfigError, match="timesteps=3"):
        profile_model(m, size=4, timesteps=2)
    with pytest.raises(ConfigError, match="multiple"):
        profile_model(m, size=(4, 5))
    with pytest.raises(ConfigError, match="batch"):
        profile_model(m, size=4, batch=0)


@pytest.fixture(scope="module")
def tiny_msf_report():
    torch.manual_seed(0)
    model = create_model("medspikeformer", **SMALL_MSF)
    return model, profile_model(model, size=32, timesteps=2)


def test_medspikeformer_report(tiny_msf_report) -> None:
    model, r = tiny_msf_report
    heads = sum(p.numel() for p in model.stage_heads.parameters())
    assert heads > 0
    assert r.params == sum(p.numel() for p in model.parameters()) - heads
    assert r.excluded_modules == ["stage_heads"]
    assert all(0.0 <= n.firing_rate <= 1.0 for n in r.neurons)
    assert len(r.neurons) == sum(isinstance(m, LIFNeuron) for m in model.modules())
    real = [layer.name for layer in r.layers if not layer.spike_input]
    assert real == ["stem.conv"]  # spike-driven: only the first conv sees real values
    assert sum(layer.macs for layer in r.layers) + r.other_macs == r.macs
    assert r.timesteps == 2 and r.flops_per_timestep == r.flops / 2
    json.dumps(r.to_dict())
    console = Console(record=True, width=160)
    console.print(r.to_table())
    text = console.export_text()
    assert "GFLOPs per timestep" in text and "stem.conv" in text and "firing rate" in text


def test_ann_energy_counts_all_macs() -> None:
    model = create_model("ann", base_channels=8)
    r = profile_model(model, size=32)
    assert not r.is_spiking and r.sops == 0 and r.neurons == []
    assert r.energy_pj == pytest.approx(E_MAC_PJ * r.macs)


def test_cli_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "profile.json"
    argv = ["profile", "medspikeformer", "--size", "32", "--base-channels", "8"]
    assert main([*argv, "--timesteps", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "GFLOPs total" in printed and "energy" in printed and "pe_sc.0.act" in printed
    data = json.loads(out.read_text())
    torch.manual_seed(0)  # --seed 0 seeds the weight init as well as the input
    model = create_model("medspikeformer", **SMALL_MSF)
    ref = profile_model(model, size=32, calibrate_bn=True)
    assert data["params"] == ref.params and data["flops"] == ref.flops
    assert data["timesteps"] == 2 and data["input_shape"] == [1, 3, 32, 32]
    assert data["mean_firing_rate"] == pytest.approx(ref.mean_firing_rate)
    assert data["sops"] == pytest.approx(ref.sops)


def test_cli_profile_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medspikeformer.engine.checkpoint import build_payload, save_checkpoint

    torch.manual_seed(3)
    model = create_model("medspikeformer", **SMALL_MSF)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # livelier weights than any fresh init, so firing rates differ
    ckpt = save_checkpoint(tmp_path / "m.pt", build_payload(model))
    out = tmp_path / "p.json"
    argv = ["profile", "medspikeformer", "--size", "32", "--checkpoint", str(ckpt)]
    assert main([*argv, "--json", str(out), "--no-layers"]) == 0
    data = json.loads(out.read_text())
    ref = profile_model(model, size=32)
    assert data["mean_firing_rate"] == pytest.approx(ref.mean_firing_rate)
    torch.manual_seed(0)
    fresh = profile_model(create_model("medspikeformer", **SMALL_MSF), size=32)
    assert abs(ref.mean_firing_rate - fresh.mean_firing_rate) > 1e-3  # the weights were used
    assert data["timesteps"] == 2  # taken from the checkpoint's config
    capsys.readouterr()
    assert main(["profile", "ssa", "--size", "32", "--checkpoint", str(ckpt)]) == 2
    assert "holds model 'medspikeformer'" in capsys.readouterr().err


def test_cli_profile_reports_both_neurons(tmp_path: Path, capsys) -> None:
    """``--neuron ilif --levels D``: the integer network's SOPs and energy, a count of v counted as
    v events (its binary expansion's figures); an unknown neuron is one line."""
    from medspikeformer.models.expansion import binary_expansion

    out = tmp_path / "p.json"
    argv = ["profile", "medspikeformer", "--size", "32", "--base-channels", "8", "--timesteps", "2"]
    assert (
        main([*argv, "--neuron", "ilif", "--levels", "3", "--json", str(out), "--no-layers"]) == 0
    )
    data = json.loads(out.read_text())
    torch.manual_seed(0)
    model = create_model("medspikeformer", **SMALL_MSF, neuron="ilif", levels=3)
    ref = profile_model(model, size=32, calibrate_bn=True)
    with binary_expansion(model):
        events = profile_model(model, size=32)
    assert data["sops"] == pytest.approx(ref.sops) and data["sops"] == pytest.approx(events.sops)
    assert data["energy_pj"] == pytest.approx(events.energy_pj)
    assert data["neuron"] == "I-LIF, D = 3"
    capsys.readouterr()
    assert main([*argv, "--neuron", "lif"]) == 0
    assert re.search(r"neuron \(spikes counted\)\s+│\s+LIF\s+│", capsys.readouterr().out)
    assert main([*argv, "--neuron", "xlif"]) == 2
    assert capsys.readouterr().err.strip() == "error: unknown neuron 'xlif'; choose from lif, ilif"


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "nope", "--size", "32"]) == 2
    assert "unknown model" in capsys.readouterr().err
    argv = ["profile", "medspikeformer", "--size", "33", "--base-channels", "8"]
    assert main(argv) == 2
    assert "multiple" in capsys.readouterr().err


def test_teacher_attached_to_student_is_excluded() -> None:
    student = OneConv()
    student.teacher = create_model("ann", base_channels=8)  # never called by forward
    r = profile_model(student, size=16)
    assert r.params == sum(p.numel() for p in student.conv.parameters())
    assert r.excluded_modules == ["teacher"]
    assert r.macs == 8 * 8 * 8 * 27


def test_calibrated_profile_fires_like_a_trained_network() -> None:
    """Untrained eval-mode BN (mean 0, var 1) silences the network; calibration restores firing."""
    torch.manual_seed(0)
    model = create_model("medspikeformer", **SMALL_MSF)
    raw = profile_model(model, size=32)
    calibrated = profile_model(model, size=32, calibrate_bn=True)
    assert raw.mean_firing_rate < 0.05
    assert 0.05 < calibrated.mean_firing_rate < 0.5
    assert calibrated.params == raw.params and calibrated.flops == raw.flops
    assert all(n.firing_rate > 0.0 for n in calibrated.neurons)


def test_fused_cpu_attention_is_counted() -> None:
    """PyTorch's counter has no formula for the CPU flash-attention kernel; ours adds it."""
    import torch.nn.functional as F

    from medspikeformer.profile import flop_counter_mode

    q = torch.randn(1, 2, 64, 16, requires_grad=True)
    k = torch.randn(1, 2, 32, 16, requires_grad=True)
    v = torch.randn(1, 2, 32, 8, requires_grad=True)
    with flop_counter_mode() as counter:
        out = F.scaled_dot_product_attention(q, k, v)
    forward = 2 * 1 * 2 * 64 * 32 * (16 + 8)  # Q Kᵀ and P V
    assert counter.get_total_flops() == forward
    with flop_counter_mode() as counter:
        out.sum().backward()
    assert counter.get_total_flops() == 2 * forward


def test_ann_twin_attention_flops_are_counted() -> None:
    model = create_model("ann", base_channels=8, num_units=2)
    report = profile_model(model, size=32)
    # softmax attention per unit: L·S·(E + E_v) MACs over all heads, L = S = tokens, E = E_v = C
    attention = 32 * 32 * 32 * 32 * (8 + 8) + 16 * 16 * 16 * 16 * (16 + 16)
    assert report.macs - report.synaptic_macs == attention
