"""What a new user types first: the version, the model list, a device the machine lacks."""

from __future__ import annotations

import pytest
import torch

import medspikeformer as msf
from inference.helpers import make_checkpoint
from medspikeformer.cli import main
from reliability.helpers import assert_user_error, run_main


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([flag])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"medspikeformer {msf.__version__}"


def test_list_models_names_every_registered_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines[1:]]  # a header line, then one row per model
    assert names == msf.list_models()
    row = next(line for line in lines if line.startswith("unet "))
    assert "none" in row  # its default teacher


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["evaluate", "predict", "explain", "profile", "train", "demo"])
def test_cuda_without_cuda_is_one_line(command: str, tmp_path, capsys) -> None:
    ckpt = make_checkpoint(tmp_path)
    image = tmp_path / "x.png"
    args = {
        "evaluate": ["evaluate", ckpt, "--out", tmp_path / "ev"],
        "predict": ["predict", ckpt, image, "--out", tmp_path / "p"],
        "explain": ["explain", ckpt, image, "--out", tmp_path / "h.png"],
        "profile": ["profile", "medspikeformer", "--size", "32"],
        "train": ["train", "--config", "synthetic", "--epochs", "1", "--out", tmp_path / "r"],
        "demo": ["demo", "--epochs", "1", "--out", tmp_path / "d"],
    }[command]
    assert_user_error(run_main([*args, "--device", "cuda"], capsys), "cuda")
