"""Spike-driven check: spiking models pass, real-valued models are caught."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medspikeformer.analysis import check_spike_driven
from medspikeformer.models import create_model

SPIKING = [
    "medspikeformer",
    "medspikeformer_wo_sdsa",
    "medspikeformer_wo_sc",
    "medspikeformer_wo_aa",
    "medspikeformer_wo_ai",
    "medspikeformer_wo_ia",
    "medspikeformer_wo_ii",
    "ssa",
    "sdt",
    "qk",
]


@pytest.mark.parametrize("train_mode", [True, False])
@pytest.mark.parametrize("name", SPIKING)
def test_spiking_models_are_spike_driven(name: str, train_mode: bool) -> None:
    """Binary-LIF networks (integer ones pass through their binary expansion:
    tests/models/test_integer_spikes.py)."""
    model = create_model(name, base_channels=8, timesteps=2, neuron="lif")
    x = torch.randn(2, 3, 32, 48) * 2
    report = check_spike_driven(model, x, train_mode=train_mode)
    assert report.ok, report.table()
    assert report.first_layer == "stem.conv"
    checked = [r for r in report.layers if not r.first and not r.training_only]
    assert len(checked) >= 10
    assert all(r.binary for r in checked)
    stage = [r for r in report.layers if r.training_only]
    assert len(stage) == 4 and all(r.name.startswith("stage_heads") for r in stage)
    if train_mode:  # with batch statistics the neurons fire: the check saw real spikes
        assert sum(r.max == 1.0 for r in checked) >= len(checked) - 2
    assert model.training is True  # mode restored
    assert "spike-driven" in str(report)


@pytest.mark.parametrize("name", ["ann", "unet"])
def test_real_valued_models_fail(name: str) -> None:
    model = create_model(name, base_channels=8)
    report = check_spike_driven(model, torch.randn(1, 3, 32, 32))
    assert not report.ok
    assert len(report.violations) >= 5
    assert "REAL-VALUED" in report.table()


def test_counts_allowed_only_when_asked() -> None:
    class Counts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)

        def forward(self, x):
            self.a(x)
            return self.b(torch.full_like(x, 3.0))  # integer counts, not binary

    x = torch.randn(2, 4)
    assert not check_spike_driven(Counts(), x).ok
    report = check_spike_driven(Counts(), x, allow_counts=True)
    assert report.ok and report.layers[1].status == "spike counts"


def test_negative_values_are_not_counts() -> None:
    seq = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    report = check_spike_driven(seq, torch.ones(1, 3), allow_counts=True)
    assert report.first_layer == "0"
    assert not report.ok and report.violations[0].startswith("1 (Linear)")


def test_integer_counts_point_to_the_binary_expansion() -> None:
    """The default network fires counts: the check says how to see its 0/1 events."""
    model = create_model("medspikeformer", base_channels=8, timesteps=2)
    report = check_spike_driven(model, torch.randn(2, 3, 32, 32) * 2, train_mode=True)
    assert report.violations
    assert all("binary_expansion" in v for v in report.violations), report.violations
