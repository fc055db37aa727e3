"""Silent wrong results (issue 16, cases 1–4): each once gave a wrong figure with exit code 0.

1. 16-bit masks holding 0/1 read as empty;
2. ``--resume`` redrew the split and accepted edits of the run's config;
3. a cosine schedule was not rescaled when a run was extended with a larger ``--epochs``;
4. bit flips in a checkpoint's tensor data and NaN weights loaded silently.
"""

from __future__ import annotations

import itertools
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from PIL import Image

from medspikeformer.cli import main
from medspikeformer.data import read_mask
from medspikeformer.engine import train
from medspikeformer.engine.checkpoint import load_checkpoint, load_model
from medspikeformer.errors import CheckpointError, ConfigError
from tiny_models import TINY_MSF

from .helpers import assert_user_error, run_cli


def _quiet(_msg: str) -> None:
    pass


def _tiny(out: Path, **train_opts: object) -> dict:
    return {
        "model": {"name": "medspikeformer", **TINY_MSF},
        "data": {
            "dataset": "synthetic",
            "size": 32,
            "split_spec": "50/25/25",
            "augment": "none",
            "cache_dir": False,
            "options": {"num_samples": 8},
        },
        "optim": {"lr": 3e-3},
        "train": {"epochs": 2, "batch_size": 4, "progress": False, **train_opts},
        "out": str(out),
    }


# ----------------------------------------------------------------------------------- case 1
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_sixteen_bit_zero_one_masks_keep_their_foreground(tmp_path: Path, ext: str) -> None:
    mask = np.zeros((16, 20), dtype=np.uint16)
    mask[4:10, 5:12] = 1
    path = tmp_path / f"m{ext}"
    if ext == ".png":
        Image.fromarray(mask).save(path)
    else:
        tifffile.imwrite(path, mask)
    got = read_mask(path)
    assert got.dtype == np.bool_
    assert np.array_equal(got, mask > 0)


def test_sixteen_bit_full_range_masks_still_binarise(tmp_path: Path) -> None:
    mask = np.zeros((8, 8), dtype=np.uint16)
    mask[2:5, 2:5] = 65535
    path = tmp_path / "m.png"
    Image.fromarray(mask).save(path)
    assert np.array_equal(read_mask(path), mask > 0)


# ----------------------------------------------------------------------------------- case 2
def _write_folder(root: Path, n: int, start: int = 0) -> None:
    rng = np.random.default_rng(7)
    for i in range(start, start + n):
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        m = np.zeros((32, 32), dtype=np.uint8)
        m[8:20, 8:20] = 255
        Image.fromarray(img).save(root / "images" / f"img{i:02d}.png")
        Image.fromarray(m).save(root / "masks" / f"img{i:02d}.png")


def _folder_config(root: Path, out: Path) -> dict:
    cfg = _tiny(out, epochs=1)
    cfg["data"] = {**cfg["data"], "dataset": "folder", "root": str(root), "options": {}}
    return cfg


def test_resume_refuses_when_the_drawn_split_changed(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    _write_folder(data, 8)
    train(_folder_config(data, run), log=_quiet)
    saved = (run / "split.json").read_text()
    _write_folder(data, 8, start=8)  # new images arrive: a fresh draw would reshuffle the parts
    cfg = _folder_config(data, run)
    cfg["train"]["epochs"] = 2
    with pytest.raises(ConfigError, match=r"split\.json.*--resume-force"):
        train(cfg, resume=run, log=_quiet)
    assert (run / "split.json").read_text() == saved


def test_resume_force_keeps_the_saved_split(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    _write_folder(data, 8)
    train(_folder_config(data, run), log=_quiet)
    saved = json.loads((run / "split.json").read_text())
    _write_folder(data, 8, start=8)
    cfg = _folder_config(data, run)
    cfg["train"]["epochs"] = 2
    result = train(cfg, resume=run, resume_force=True, log=_quiet)
    assert result["epochs_run"] == 2
    assert json.loads((run / "split.json").read_text()) == saved


def test_resume_refuses_an_edited_run_config_naming_the_field(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_tiny(run, epochs=1), log=_quiet)
    cfg_path = run / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["data"]["size"] = 64
    cfg["model"]["timesteps"] = 3
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    with pytest.raises(
        ConfigError, match=r"data\.size.*model\.timesteps|model\.timesteps.*data\.size"
    ):
        train(resume=run, log=_quiet)


def test_resume_on_the_command_line_names_the_edited_field(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_tiny(run, epochs=1), log=_quiet)
    cfg_path = run / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["optim"]["name"] = "sgd"  # adam → sgd once ended in a KeyError traceback
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    result = run_cli(["train", "--resume", run, "--epochs", "2"])
    assert_user_error(result, "optim.name", "last.pt", "--resume-force")


def test_resume_accepts_the_resumable_flags(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_tiny(run, epochs=1), log=_quiet)
    assert main(["train", "--resume", str(run), "--epochs", "2", "--num-workers", "0"]) == 0
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


# ----------------------------------------------------------------------------------- case 3
def _lrs(run: Path) -> list[float]:
    import csv

    with (run / "metrics.csv").open() as fh:
        return [float(r["lr"]) for r in csv.DictReader(fh)]


def test_cosine_schedule_is_rebuilt_when_a_run_is_extended(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = _tiny(run, epochs=2)
    cfg["scheduler"] = {"name": "cosine", "min_lr": 0.0}
    train(cfg, log=_quiet)
    cfg["train"]["epochs"] = 4
    train(cfg, resume=run, log=_quiet)
    lrs = _lrs(run)
    base = 3e-3
    expected = [base * (1 + math.cos(math.pi * e / 4)) / 2 for e in (2, 3)]
    assert lrs[:2] == pytest.approx([base, base / 2])
    assert lrs[2:] == pytest.approx(expected)  # was [0, 1.5e-3]: lr rose from 0
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_cosine_schedule_of_an_extended_run_matches_a_run_planned_that_long(
    tmp_path: Path,
) -> None:
    planned = tmp_path / "planned"
    cfg = _tiny(planned, epochs=3)
    cfg["scheduler"] = {"name": "cosine", "min_lr": 1e-4}
    train(cfg, log=_quiet)
    ext = tmp_path / "extended"
    cfg2 = _tiny(ext, epochs=1)
    cfg2["scheduler"] = cfg["scheduler"]
    train(cfg2, log=_quiet)
    cfg2["train"]["epochs"] = 3
    train(cfg2, resume=ext, log=_quiet)
    assert _lrs(ext)[1:] == pytest.approx(_lrs(planned)[1:])


# ----------------------------------------------------------------------------------- case 4
@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ck") / "run"
    train(_tiny(run, epochs=1), log=_quiet)
    return run / "best.pt"


def _flip_in_tensor_data(src: Path, dst: Path) -> str:
    """Copy ``src`` with one byte flipped inside the largest tensor record; returns its name."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    # local header: 30 bytes + name + extra, then the stored (uncompressed) record
    name_len = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x10
    dst.write_bytes(bytes(data))
    return info.filename


def test_bit_flip_inside_tensor_data_is_refused(trained_ckpt: Path, tmp_path: Path) -> None:
    bad = tmp_path / "flipped.pt"
    _flip_in_tensor_data(trained_ckpt, bad)
    with pytest.raises(CheckpointError, match=r"flipped\.pt.*(CRC|checksum)"):
        load_checkpoint(bad)


def test_bit_flip_refused_by_predict(trained_ckpt: Path, tmp_path: Path) -> None:
    bad = tmp_path / "flipped.pt"
    _flip_in_tensor_data(trained_ckpt, bad)
    img = tmp_path / "in" / "a.png"
    img.parent.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    out = tmp_path / "out"
    result = run_cli(["predict", bad, img, "--out", out])
    assert_user_error(result, "flipped.pt")
    assert not any(out.glob("*.png")) if out.exists() else True


def test_checkpoint_with_nan_weights_is_refused(trained_ckpt: Path, tmp_path: Path) -> None:
    ck = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    name = next(k for k, v in ck["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    ck["state_dict"][name] = ck["state_dict"][name].clone()
    ck["state_dict"][name].view(-1)[0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(ck, bad)
    with pytest.raises(CheckpointError, match=rf"nan\.pt.*{name}.*(NaN|finite)"):
        load_model(bad)


def test_resume_refuses_nan_joint_teacher_weights(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_tiny(run, epochs=1), log=_quiet)
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    teacher = ck["resume"]["teacher_state_dict"]
    name = next(k for k, v in teacher.items() if v.is_floating_point() and v.numel() > 1)
    teacher[name] = torch.full_like(teacher[name], float("nan"))
    torch.save(ck, run / "last.pt")
    cfg = _tiny(run, epochs=2)
    with pytest.raises(CheckpointError, match=rf"last\.pt.*teacher_state_dict.*{name}"):
        train(cfg, resume=run, log=_quiet)
