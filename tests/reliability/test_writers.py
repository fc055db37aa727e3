"""No writer bypasses ``outputs`` (issue 27, B): export, explain, data show, evaluate and profile
never replace one of their inputs or a training run's files, and never write through a link."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .helpers import assert_user_error, folder_dataset, run_main, tiny_checkpoint

PROFILE = ["profile", "unet", "--size", "32", "--base-channels", "4", "--no-layers"]


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return tiny_checkpoint(_mkdir(tmp_path / "c"))


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


@pytest.mark.parametrize("flag", ["--safetensors", "--onnx"])
def test_export_never_overwrites_its_checkpoint(
    ckpt: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = ckpt.read_bytes()
    res = run_main(["export", ckpt, flag, ckpt], capsys)
    assert_user_error(res, ckpt.name, "input")
    assert ckpt.read_bytes() == before


def test_export_never_overwrites_a_hard_link_to_its_checkpoint(
    ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = ckpt.with_name("same.safetensors")
    os.link(ckpt, link)
    before = ckpt.read_bytes()
    res = run_main(["export", ckpt, "--safetensors", link], capsys)
    assert_user_error(res, "same.safetensors", "input")
    assert ckpt.read_bytes() == before


def test_explain_never_overwrites_its_image(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = tmp_path / "scan.png"
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(img)
    before = img.read_bytes()
    res = run_main(["explain", ckpt, img, "--out", img, "--no-teacher"], capsys)
    assert_user_error(res, "scan.png", "input")
    assert img.read_bytes() == before


def test_data_show_never_overwrites_a_dataset_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = folder_dataset(tmp_path / "ds")
    victim = data / "images" / "c1.png"
    before = victim.read_bytes()
    res = run_main(["data", "show", "folder", "--root", data, "--out", victim, "-n", "1"], capsys)
    assert_user_error(res, "c1.png", "input")
    assert victim.read_bytes() == before


def test_evaluate_never_replaces_a_training_runs_summary(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = folder_dataset(tmp_path / "ds")
    run = _mkdir(tmp_path / "run")
    (run / "summary.json").write_text('{"best_miou": 0.8}')
    (run / "metrics.csv").write_text("epoch\n1\n")
    args = ["evaluate", ckpt, "--dataset", "folder", "--data-root", data, "--split", "all"]
    res = run_main([*args, "--out", run, "--cache-dir", "off"], capsys)
    assert_user_error(res, "training run", "summary.json")
    assert (run / "summary.json").read_text() == '{"best_miou": 0.8}'


def test_profile_json_never_writes_through_a_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep")
    (tmp_path / "r.json").symlink_to(victim)
    res = run_main([*PROFILE, "--json", tmp_path / "r.json"], capsys)
    assert_user_error(res, "r.json", "symbolic link")
    assert victim.read_text() == "keep"


def test_profile_json_into_an_unwritable_place_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file.txt").write_text("x")
    res = run_main([*PROFILE, "--json", tmp_path / "file.txt" / "r.json"], capsys)
    assert_user_error(res, "r.json")


def test_profile_json_is_written_atomically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = run_main([*PROFILE, "--json", tmp_path / "r.json"], capsys)
    assert res.returncode == 0, res.stderr
    import json

    assert "params" in json.dumps(json.loads((tmp_path / "r.json").read_text()))
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
