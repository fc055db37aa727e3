"""The Python API a user reaches for first: model(x) in any mode, load a model, predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medspikeformer import create_model, list_models
from medspikeformer.inference import Predictor, load_pretrained
from medspikeformer.losses import BCEDiceLoss
from tiny_models import tiny_options

from .helpers import SIZE, make_checkpoint


@pytest.mark.parametrize("name", list_models())
def test_loss_on_model_output_in_train_mode(name: str) -> None:
    """``BCEDiceLoss()(model(x), y)`` in train mode (it failed on a SegmentationOutput)."""
    model = create_model(name, **tiny_options(name)).train()
    x = torch.rand(2, 3, 32, 32)
    y = (torch.rand(2, 1, 32, 32) > 0.5).float()
    loss = BCEDiceLoss()(model(x), y)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_load_pretrained_returns_the_model_alone(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)
    model = load_pretrained(path)
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model(torch.rand(1, 3, SIZE, SIZE)).shape == (1, 1, SIZE, SIZE)


def test_predictor_from_checkpoint_reads_size_mode_and_threshold(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, size=SIZE)
    predictor = Predictor.from_checkpoint(path)
    assert predictor.train_size == (SIZE, SIZE) and predictor.in_channels == 3
    assert predictor.mode == "resize" and predictor.threshold == 0.5
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    manual = Predictor(predictor.model, (SIZE, SIZE), mode="resize").predict_array(image)
    assert np.array_equal(predictor.predict_array(image), manual)
    assert Predictor.from_checkpoint(path, mode="sliding", threshold=0.3).threshold == 0.3


def test_onnx_export_without_its_extra_is_one_line_naming_it(monkeypatch, tmp_path) -> None:
    """A plain install has no onnx: export says which extra installs it, before any work."""
    import importlib.util

    from medspikeformer import create_model
    from medspikeformer.errors import ConfigError
    from medspikeformer.inference.export import export_onnx

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    model = create_model("medspikeformer", base_channels=4, num_units=2, timesteps=1)
    with pytest.raises(ConfigError, match=r"needs onnx, .*pip install 'medspikeformer\[export\]'"):
        export_onnx(model, tmp_path / "m.onnx", size=(16, 16))
    assert not (tmp_path / "m.onnx").exists()
