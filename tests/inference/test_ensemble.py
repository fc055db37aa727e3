"""Ensembles: ``--ensemble CKPT`` in predict and evaluate average the members' probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.cli import main
from medspikeformer.errors import CheckpointError
from medspikeformer.inference.context import load_context
from medspikeformer.inference.ensemble import Ensemble, load_ensemble_context
from medspikeformer.inference.predict import Predictor
from medspikeformer.inference.sliding import forward_probs

from .helpers import SIZE, make_checkpoint


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("members")
    return {
        "a": make_checkpoint(folder, "a.pt", seed=0),
        "b": make_checkpoint(folder, "b.pt", seed=1),
        "big": make_checkpoint(folder, "big.pt", size=64, seed=2),
    }


def _probs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return forward_probs(model, x)


def test_two_identical_members_equal_the_single_model(checkpoints):
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    single = load_context(checkpoints["a"]).model
    pair = load_ensemble_context([checkpoints["a"], checkpoints["a"]]).model
    assert isinstance(pair, Ensemble)
    torch.testing.assert_close(_probs(pair, x), _probs(single, x), rtol=0, atol=0)
    image = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    one = Predictor.from_checkpoint(checkpoints["a"], exact=True, mode="resize")
    two = Predictor.from_checkpoint([checkpoints["a"]] * 2, exact=True, mode="resize")
    np.testing.assert_array_equal(two.predict_array(image), one.predict_array(image))


def test_two_different_members_give_the_mean_probability(checkpoints):
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    a, b = (load_context(checkpoints[k]).model for k in "ab")
    pa, pb = _probs(a, x), _probs(b, x)
    assert not torch.equal(pa, pb)
    ensemble = load_ensemble_context([checkpoints["a"], checkpoints["b"]]).model
    mean = (pa + pb) / 2
    torch.testing.assert_close(_probs(ensemble, x), mean)
    with torch.inference_mode():  # forward: logits whose sigmoid is the mean probability
        torch.testing.assert_close(torch.sigmoid(ensemble(x)), mean, atol=1e-6, rtol=0)
    image = np.random.default_rng(2).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    both = Predictor.from_checkpoint([checkpoints["a"], checkpoints["b"]], exact=True)
    proba = both.predict_proba(image)
    singles = [Predictor.from_checkpoint(checkpoints[k], exact=True) for k in "ab"]
    np.testing.assert_allclose(
        proba, (singles[0].predict_proba(image) + singles[1].predict_proba(image)) / 2, atol=1e-6
    )


def test_members_must_agree(checkpoints):
    with pytest.raises(CheckpointError, match=r"big\.pt: training size .*must agree"):
        load_ensemble_context([checkpoints["a"], checkpoints["big"]])


def test_cli_ensembles_name_their_members(checkpoints, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(np.full((30, 30, 3), 128, np.uint8)).save(images / "x.png")
    args = ["--ensemble", str(checkpoints["b"]), "--no-progress"]
    assert main(["predict", str(checkpoints["a"]), str(images), "--out", str(tmp_path / "p"),
                 *args]) == 0  # fmt: skip
    assert (tmp_path / "p" / "x_mask.png").is_file()
    out = tmp_path / "ev"
    assert main(["evaluate", str(checkpoints["a"]), "--out", str(out), "--grid", "0",
                 *args]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["info"]["ensemble"] == [str(checkpoints["a"]), str(checkpoints["b"])]
    assert str(checkpoints["b"]) in (out / "summary.md").read_text()
    rc = main(["evaluate", str(checkpoints["a"]), "--out", str(tmp_path / "bad"),
               "--ensemble", str(checkpoints["big"]), "--no-progress"])  # fmt: skip
    assert rc == 2
