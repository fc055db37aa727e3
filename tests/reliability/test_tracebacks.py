"""One line instead of a traceback (issue 27, E): each exception class that used to escape
``main`` for one of the red team's cases is now a one-line user error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.engine.checkpoint import load_model
from medspikeformer.errors import CheckpointError, ConfigError

from .helpers import assert_user_error, cli_env, run_main, tiny_checkpoint

PROFILE = ["profile", "unet", "--size", "32", "--base-channels", "4", "--no-layers"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


def _edited(ckpt: Path, tmp_path: Path, name: str, **config: object) -> Path:
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    data["model_config"].update(config)
    out = tmp_path / name
    torch.save(data, out)
    return out


def test_a_warning_before_the_command_runs_is_one_line() -> None:
    # a child process: pytest records warnings instead of printing them
    code = (
        "import warnings, medspikeformer.cli as c\n"
        "real = c.build_parser\n"
        "def early():\n"
        "    warnings.warn('early warning', UserWarning)\n"
        "    return real()\n"
        "c.build_parser = early\n"
        "raise SystemExit(c.main(['data', 'list']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "warning: early warning\n"


@pytest.mark.parametrize(
    ("name", "config", "needle"),
    [
        ("attr.pt", {"interactions": [[]]}, "AttributeError"),  # escaped load_model
        ("nan.pt", {"v_threshold": float("nan")}, "not a finite number"),  # loaded silently
        ("inf.pt", {"tau": float("inf")}, "not a finite number"),
    ],
)
def test_checkpoint_configs_that_break_the_builder_are_checkpoint_errors(
    ckpt: Path, tmp_path: Path, name: str, config: dict, needle: str
) -> None:
    bad = _edited(ckpt, tmp_path, name, **config)
    with pytest.raises(CheckpointError, match=needle):
        load_model(bad)


def test_complex_weights_are_refused_not_truncated(ckpt: Path, tmp_path: Path) -> None:
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    key = next(k for k, v in data["state_dict"].items() if v.is_floating_point())
    data["state_dict"][key] = data["state_dict"][key].to(torch.complex64)
    bad = tmp_path / "complex.pt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match=r"complex\.pt.*complex64"):
        load_model(bad)


@pytest.mark.parametrize("device", ["mps", "cuda:x", "tpu"])
def test_unavailable_or_unknown_device_is_one_line(
    device: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    res = run_main([*PROFILE, "--device", device], capsys)
    assert_user_error(res, device)


@pytest.mark.parametrize("seed", [-1, 2**32, 2**70])
def test_out_of_range_seed_is_one_line(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main([*PROFILE, "--seed", seed], capsys)
    assert_user_error(res, "--seed", "0…")


def test_out_of_range_seed_in_a_training_config_is_refused() -> None:
    from medspikeformer.engine.config import load_config, validate_config

    cfg = load_config("kvasir", sets=["train.seed=18446744073709551616"])
    with pytest.raises(ConfigError, match=r"train\.seed"):
        validate_config(cfg, check_model=False)


@pytest.mark.parametrize("threshold", ["0", "1", "-0.5", "nan"])
def test_evaluate_threshold_outside_0_1_is_one_line(
    ckpt: Path, threshold: str, capsys: pytest.CaptureFixture[str]
) -> None:
    res = run_main(["evaluate", ckpt, "--threshold", threshold], capsys)
    assert_user_error(res, "--threshold")


def _folder(root: Path) -> Path:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "images" / "a.png")
    m = np.zeros((32, 32), np.uint8)
    m[:8] = 255
    Image.fromarray(m).save(root / "masks" / "a.png")
    return root


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["-n", "0"], "-n 0"), (["--colors", "300"], "--colors 300"), (["--size", "0"], "--size 0")],
)
def test_data_show_bad_numbers_are_one_line(
    tmp_path: Path, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _folder(tmp_path / "ds")
    res = run_main(
        ["data", "show", "folder", "--root", data, "--out", tmp_path / "g.png", *args], capsys
    )
    assert_user_error(res, needle)
    assert not (tmp_path / "g.png").exists()
