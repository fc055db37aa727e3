"""Lost files (issue 16, cases 5–6): no output over an input, over another output of the same
run or through a link, and no truncated output on a full disk."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medspikeformer.outputs import OutputError, OutputNames, atomic_write_bytes

from .helpers import (
    assert_user_error,
    run_cli,
    run_cli_with_file_size_limit,
    run_main,
    tiny_checkpoint,
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


def _png(path: Path, seed: int = 0, size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------------- over an input
def test_predict_into_the_input_folder_never_overwrites_an_input(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imgs = tmp_path / "imgs"
    _png(imgs / "x.png")
    _png(imgs / "x_mask.png", seed=1)  # an input that x.png's mask would replace
    before = (imgs / "x_mask.png").read_bytes()
    res = run_main(["predict", ckpt, imgs, "--out", imgs], capsys)
    assert_user_error(res, "x_mask.png", "input")
    assert (imgs / "x_mask.png").read_bytes() == before
    assert sorted(p.name for p in imgs.iterdir()) == ["x.png", "x_mask.png"]


# ------------------------------------------------------------------------- name collisions
def test_outputs_of_one_run_never_share_a_name(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a1 = _png(tmp_path / "one" / "a.png", seed=1)
    a2 = _png(tmp_path / "two" / "a.png", seed=2)
    a_2 = _png(tmp_path / "one" / "a-2.png", seed=3)  # its stem is the one "two/a.png" gets
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="already written by this run"):
        res = run_main(["predict", ckpt, a1, a2, a_2, "--out", out], capsys)
    assert res.returncode == 0, res.stderr
    masks = sorted(p.name for p in out.glob("*_mask*.png"))
    assert len(masks) == 3, masks  # once two: one mask was overwritten, "3 file(s)" reported


def test_output_names_suffix_collisions_and_refuse_inputs(tmp_path: Path) -> None:
    inp = tmp_path / "in.png"
    inp.write_bytes(b"x")
    names = OutputNames([inp])
    first = names.claim(tmp_path / "a_mask.png")
    with pytest.warns(UserWarning):
        second = names.claim(tmp_path / "a_mask.png")
    assert first != second and second.name == "a_mask-2.png"
    with pytest.raises(OutputError, match="input"):
        names.claim(inp)
    hard = tmp_path / "hard.png"
    os.link(inp, hard)  # another name for the same input file
    with pytest.raises(OutputError, match="input"):
        names.claim(hard)


# ------------------------------------------------------------------------- links
def test_predict_never_writes_through_a_link_in_out(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = _png(tmp_path / "in" / "a.png")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_mask.png").symlink_to(victim)
    res = run_main(["predict", ckpt, img, "--out", out], capsys)
    assert_user_error(res, "a_mask.png", "symbolic link")
    assert victim.read_text() == "keep me"
    assert (out / "a_mask.png").is_symlink()


def test_evaluate_never_writes_through_a_link_in_out(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "ds"
    for i in range(2):
        _png(data / "images" / f"c{i}.png", seed=i)
        m = np.zeros((32, 32), np.uint8)
        m[4:12, 4:12] = 255
        (data / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(data / "masks" / f"c{i}.png")
    victim = tmp_path / "precious.json"
    victim.write_text("{}")
    out = tmp_path / "eval"
    out.mkdir()
    (out / "summary.json").symlink_to(victim)
    args = ["evaluate", ckpt, "--dataset", "folder", "--data-root", data, "--split", "all"]
    res = run_main([*args, "--out", out, "--grid", "0", "--cache-dir", "off"], capsys)
    assert_user_error(res, "summary.json", "symbolic link")
    assert victim.read_text() == "{}"


def test_atomic_write_refuses_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "v"
    victim.write_text("v")
    (tmp_path / "l").symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        atomic_write_bytes(tmp_path / "l", b"new")
    assert victim.read_text() == "v"


# ------------------------------------------------------------------------- fresh train
def test_fresh_train_into_a_folder_holding_only_best_pt_is_refused(
    ckpt: Path, tmp_path: Path
) -> None:
    from medspikeformer.engine import train
    from medspikeformer.errors import ConfigError

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(ckpt.read_bytes())
    before = (run / "best.pt").read_bytes()
    cfg = {
        "model": {"name": "medspikeformer", "base_channels": 4, "num_units": 2, "timesteps": 2},
        "data": {"dataset": "synthetic", "size": 32, "options": {"num_samples": 4}},
        "train": {"epochs": 1, "batch_size": 2, "progress": False},
        "out": str(run),
    }
    with pytest.raises(ConfigError, match=r"best\.pt"):
        train(cfg, log=lambda _m: None)
    assert (run / "best.pt").read_bytes() == before


# ------------------------------------------------------------------------- full disk
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics checked on Linux")
def test_predict_on_a_full_disk_leaves_no_truncated_mask(ckpt: Path, tmp_path: Path) -> None:
    img = _png(tmp_path / "in" / "big.png", size=256)  # its mask PNG is larger than the limit
    out = tmp_path / "out"
    out.mkdir()
    res = run_cli_with_file_size_limit(
        ["predict", ckpt, img, "--out", out, "--mode", "resize"], max_bytes=100
    )
    assert_user_error(res, "big_mask.png")
    assert not (out / "big_mask.png").exists()
    assert _no_temp_files(out)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics checked on Linux")
def test_export_on_a_full_disk_leaves_no_truncated_onnx(ckpt: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    target = tmp_path / "m.onnx"
    res = run_cli_with_file_size_limit(
        ["export", ckpt, "--onnx", target, "--size", "32", "--no-verify"], max_bytes=4096
    )
    assert_user_error(res, "m.onnx")
    assert not target.exists()
    assert _no_temp_files(tmp_path)


def test_split_json_is_written_atomically(tmp_path: Path) -> None:
    from medspikeformer.data import build_dataset

    ds = build_dataset("synthetic", split="train", size=32, num_samples=4, cache_dir=False)
    target = tmp_path / "split.json"
    target.write_text("old")
    victim = tmp_path / "v.json"
    victim.write_text("v")
    ds.save_split(target)
    assert '"ids"' in target.read_text()
    link = tmp_path / "link.json"
    link.symlink_to(victim)
    with pytest.raises(OutputError):
        ds.save_split(link)
    assert victim.read_text() == "v"


def test_predict_reports_every_file_it_wrote(ckpt: Path, tmp_path: Path) -> None:
    imgs = [_png(tmp_path / "in" / f"{n}.png", seed=i) for i, n in enumerate(["a", "a-2"])]
    _png(tmp_path / "in2" / "a.png", seed=9)
    out = tmp_path / "out"
    res = run_cli(["predict", ckpt, *imgs, tmp_path / "in2" / "a.png", "--out", out])
    assert res.returncode == 0, res.stderr
    assert len(list(out.glob("*.png"))) == 3


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics checked on Linux")
def test_train_on_a_full_disk_gives_one_line_and_no_partial_checkpoint(tmp_path: Path) -> None:
    import yaml

    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model": {"name": "medspikeformer", "base_channels": 4, "num_units": 2,
                          "timesteps": 2},
                "data": {"dataset": "synthetic", "size": 32, "split_spec": "50/25/25",
                         "augment": "none", "options": {"num_samples": 4}},
                "train": {"epochs": 1, "batch_size": 2, "progress": False},
            }
        )
    )  # fmt: skip
    res = run_cli_with_file_size_limit(
        ["train", "--config", cfg, "--out", run], max_bytes=16384
    )  # the run's small files fit, a checkpoint does not
    assert_user_error(res, "run")
    assert not (run / "best.pt").exists() and not (run / "last.pt").exists()
    assert _no_temp_files(run)
