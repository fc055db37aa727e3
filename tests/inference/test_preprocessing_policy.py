"""The preprocessing policy recorded in checkpoints, and predict / explain following it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medspikeformer.cli import main
from medspikeformer.data.preprocessing import PreprocessingPolicy, training_policy
from medspikeformer.engine import train
from medspikeformer.engine.checkpoint import load_checkpoint
from medspikeformer.errors import CheckpointError
from medspikeformer.inference.context import load_context, policy_warnings

from .helpers import SIZE, make_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run of the tiny model at 32² (best.pt, last.pt)."""
    from engine.helpers import quiet, tiny_config

    run = tmp_path_factory.mktemp("policy") / "run"
    train(tiny_config(run, train={"epochs": 1}), log=quiet)
    return run


@pytest.fixture
def image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "img.png"
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(path)
    return path


def test_every_training_checkpoint_records_the_policy(trained: Path) -> None:
    for name in ("best.pt", "last.pt"):
        recorded = load_checkpoint(trained / name)["preprocessing"]
        policy = PreprocessingPolicy.from_dict(recorded)
        assert policy == PreprocessingPolicy(mode="resize", size=(32, 32), in_channels=3)


def test_policy_round_trips_and_refuses_nonsense() -> None:
    policy = training_policy([48, 64], 1)
    assert PreprocessingPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(CheckpointError, match="mode"):
        PreprocessingPolicy.from_dict({**policy.to_dict(), "mode": "crop"}, where="x.pt")


def test_old_checkpoint_without_policy_gets_the_training_rule(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path)  # build_payload alone: no "preprocessing" key
    assert "preprocessing" not in load_checkpoint(path)
    ctx = load_context(path)
    assert ctx.preprocessing == PreprocessingPolicy("resize", (SIZE, SIZE), 3)
    assert ctx.preprocessing_recorded is False


def test_predict_default_follows_the_policy(trained: Path, image: Path, tmp_path: Path, capsys):
    """Without --mode the masks are those of --mode resize (the run trained on resized images)."""
    outs = {}
    for extra in ([], ["--mode", "resize"]):
        out = tmp_path / ("default" if not extra else "resize")
        assert (
            main(["predict", str(trained / "best.pt"), str(image), "--out", str(out), *extra]) == 0
        )
        outs[out.name] = np.asarray(Image.open(out / "img_mask.png"))
    assert np.array_equal(outs["default"], outs["resize"])
    err = capsys.readouterr().err
    assert "warning" not in err and "(resize," in err


def test_inconsistent_override_warns(trained: Path, image: Path, tmp_path: Path, capsys) -> None:
    rc = main(["predict", str(trained / "best.pt"), str(image), "--out", str(tmp_path / "o"),
               "--mode", "sliding"])  # fmt: skip
    assert rc == 0
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1
    assert "resized to 32×32" in warnings[0] and "--mode sliding" in warnings[0]


def test_policy_warnings_name_each_inconsistency() -> None:
    policy = PreprocessingPolicy("resize", (256, 256), 3)
    assert policy_warnings(policy, mode="resize", size=(256, 256)) == []
    assert policy_warnings(policy, mode=None, size=None) == []
    (size_msg,) = policy_warnings(policy, mode=None, size=(128, 128))
    assert "--size 128 128" in size_msg and "256×256" in size_msg
    assert len(policy_warnings(policy, mode="sliding", size=(128, 128))) == 2


def test_explain_warns_on_a_size_override(trained: Path, image: Path, tmp_path: Path, capsys):
    out = tmp_path / "h.png"
    rc = main(["explain", str(trained / "best.pt"), str(image), "--out", str(out), "--size", "64",
               "--no-teacher"])  # fmt: skip
    assert rc == 0 and out.is_file()
    err = capsys.readouterr().err
    assert "warning: " in err and "--size 64 64" in err


@pytest.mark.parametrize(
    "intensity",
    [{"window": [-1000.0, 400.0]}, {"window": "percentile", "range": [0.5, 99.5]}, None],
)
def test_the_intensity_rule_round_trips(intensity) -> None:
    policy = training_policy(64, 1, intensity)
    back = PreprocessingPolicy.from_dict(policy.to_dict())
    assert back == policy and back.intensity == intensity


@pytest.mark.parametrize(
    "bad",
    [{"window": [400, -1000]}, {"window": "percentile"}, {"window": [0, float("nan")]}, "lung"],
)
def test_a_malformed_intensity_rule_is_a_checkpoint_error(bad) -> None:
    entry = {**training_policy(64, 1).to_dict(), "intensity": bad}
    with pytest.raises(CheckpointError, match="preprocessing intensity"):
        PreprocessingPolicy.from_dict(entry, where="x.pt")
