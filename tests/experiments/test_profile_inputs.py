"""The experiments profile trained rows on real test images (``profile_model(..., inputs=)``)."""

from __future__ import annotations

import pytest
import torch

from medspikeformer import create_model
from medspikeformer.errors import ConfigError
from medspikeformer.experiments.runner import profile_row
from medspikeformer.profile import profile_model


def _tiny():
    return create_model("medspikeformer", base_channels=4, num_units=2, timesteps=2).eval()


def test_profile_on_given_inputs_depends_on_them() -> None:
    model = _tiny()
    torch.manual_seed(1)
    bright = torch.rand(3, 3, 32, 32) * 4.0
    r_bright = profile_model(model, size=32, inputs=bright)
    r_zero = profile_model(model, size=32, inputs=torch.zeros(3, 3, 32, 32))
    assert r_bright.input_shape[0] == 3
    assert r_bright.flops == r_zero.flops  # the network's FLOPs do not depend on the input
    assert r_bright.mean_firing_rate != pytest.approx(r_zero.mean_firing_rate)
    # the same inputs give the same report (no hidden randomness)
    again = profile_model(model, size=32, inputs=bright)
    assert again.mean_firing_rate == pytest.approx(r_bright.mean_firing_rate)
    assert again.energy_pj == pytest.approx(r_bright.energy_pj)
    with pytest.raises(ConfigError, match=r"inputs must be \[B, 3, 32, 32\]"):
        profile_model(model, size=32, inputs=torch.zeros(2, 3, 16, 16))


def test_profile_row_is_per_image_and_uses_test_images() -> None:
    model = _tiny()
    images = [{"image": torch.rand(3, 32, 32)} for _ in range(5)]
    row = profile_row(model, images, 32, max_images=4)
    assert row["firing_rate_input"] == "4 test images"
    single = profile_model(model, size=32)
    assert row["params_m"] == pytest.approx(single.params / 1e6)
    assert row["gflops"] == pytest.approx(single.flops / 1e9)  # per image
    assert 0.0 < row["firing_rate"] < 1.0 and row["energy_mj"] > 0
    unet = create_model("unet").eval()
    assert profile_row(unet, images, 32)["firing_rate"] is None
