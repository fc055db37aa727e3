"""Defects found by the second hostile pass of issue 27 (``benchmarks/hostile_pass.py``) and the
two first-pass cases that had no end-to-end test: each test failed before its fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from .helpers import assert_user_error, cli_env, folder_dataset, run_main, tiny_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


def _image(path: Path) -> Path:
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(path)
    return path


def test_evaluate_with_a_non_utf8_sample_id_writes_every_report(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """E.9 end to end: the picture (``qualitative.png``) labels its rows with the sample ids;
    matplotlib cannot draw the surrogate escapes of a name that is not UTF-8 and raised after
    the whole evaluation."""
    data = folder_dataset(tmp_path / "ds", n=2)
    for sub in ("images", "masks"):
        os.rename(data / sub / "c0.png", os.path.join(os.fsencode(data / sub), b"c\xff0.png"))
    out = tmp_path / "ev"
    res = run_main(
        ["evaluate", ckpt, "--dataset", "folder", "--data-root", data, "--split", "all",
         "--out", out, "--cache-dir", "off", "--no-progress"],
        capsys,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert {"per_image.csv", "summary.json", "summary.md", "qualitative.png"} <= {
        p.name for p in out.iterdir()
    }
    assert b"c\\udcff0" in (out / "per_image.csv").read_bytes()


def test_figure_text_is_escaped_before_drawing(tmp_path: Path) -> None:
    """The rule in one place (``viz.cells.save_png``): every text of a figure is printable."""
    from matplotlib.figure import Figure

    from medspikeformer.viz.cells import save_png

    fig = Figure()
    ax = fig.subplots()
    ax.set_ylabel(os.fsdecode(b"id-\xfe"))
    fig.suptitle("bell\x07")
    save_png(fig, tmp_path / "f.png", dpi=50)
    assert (tmp_path / "f.png").stat().st_size > 0
    assert ax.get_ylabel() == "id-\\udcfe" and fig.get_suptitle() == "bell\\x07"


def test_an_interrupted_predict_leaves_no_temporary_or_empty_file(
    ckpt: Path, tmp_path: Path
) -> None:
    """F.10 end to end: ``predict`` over a folder, stopped by SIGTERM once some masks exist."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    one = _image(imgs / "i000.png").read_bytes()
    for i in range(1, 300):
        (imgs / f"i{i:03d}.png").write_bytes(one)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "medspikeformer", "predict", str(ckpt), str(imgs), "--out",
         str(out), "--no-progress", "--exact"],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len(list(out.iterdir())) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "predict ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    from medspikeformer.cli import SIGTERM_EXIT

    assert proc.returncode == SIGTERM_EXIT, err
    assert b"Traceback" not in err
    names = [p.name for p in out.iterdir()]
    assert not [n for n in names if n.endswith(".tmp")], names
    assert all((out / n).stat().st_size > 0 for n in names), names
    for n in names:
        assert Image.open(out / n).size == (32, 32)


OUTPUT_FLAGS = {
    "predict": lambda ck, d: ["predict", ck, _image(d / "a.png"), "--out", ""],
    "evaluate": lambda ck, d: ["evaluate", ck, "--dataset", "folder", "--data-root",
                               folder_dataset(d / "ds"), "--out", ""],
    "export --onnx": lambda ck, d: ["export", ck, "--onnx", ""],
    "export --safetensors": lambda ck, d: ["export", ck, "--safetensors", " "],
    "explain": lambda ck, d: ["explain", ck, _image(d / "a.png"), "--out", "", "--no-teacher"],
    "data show": lambda ck, d: ["data", "show", "folder", "--root", folder_dataset(d / "ds"),
                                "--out", ""],
    "profile --json": lambda ck, d: ["profile", "unet", "--size", "32", "--json", ""],
    "train --out": lambda ck, d: ["train", "--config", "synthetic", "--out", ""],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(OUTPUT_FLAGS))
def test_an_empty_output_path_is_refused(
    command: str, ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out ''`` named the working folder (``Path('') == Path('.')``): ``predict`` wrote its
    masks there, ``export`` said "output path is a directory"."""
    work = tmp_path / "work"
    work.mkdir()
    args = OUTPUT_FLAGS[command](ckpt, tmp_path)
    cwd = Path.cwd()
    os.chdir(work)
    try:
        res = run_main(args, capsys)
    finally:
        os.chdir(cwd)
    assert res.returncode == 2, res.stderr
    assert "empty path" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert list(work.iterdir()) == []


def test_a_bad_training_size_in_a_checkpoint_names_the_file(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for size in (10**6, -32):
        data = torch.load(ckpt, map_location="cpu", weights_only=True)
        data["train_config"]["data"]["size"] = size
        data.pop("preprocessing", None)
        bad = tmp_path / f"size{size}.pt"
        torch.save(data, bad)
        res = run_main(
            ["predict", bad, _image(tmp_path / "a.png"), "--out", tmp_path / "o"], capsys
        )
        assert_user_error(res, bad.name, "size")


@pytest.mark.parametrize(
    ("name", "voxels", "needle"),
    [
        ("complex.nii.gz", np.ones((32, 32, 2), np.complex64), "complex-valued voxels"),
        ("huge.nii.gz", np.full((32, 32, 2), 1e300, np.float64), "beyond the float32 range"),
    ],
)
def test_volume_values_float32_cannot_hold_are_refused(
    name: str,
    voxels: np.ndarray,
    needle: str,
    ckpt: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Complex voxels were read as their real part (a mask, exit 0); values beyond float32 became
    infinities with a raw numpy warning line. One rule for every NIfTI reader
    (``data.volume.volume_values``): ``predict`` and the COVID-19 loader shown here."""
    import nibabel as nib

    from medspikeformer.data.datasets.covid19 import load_volume
    from medspikeformer.errors import DataError

    path = tmp_path / name
    nib.save(nib.Nifti1Image(voxels, np.eye(4)), str(path))
    res = run_main(["predict", ckpt, path, "--out", tmp_path / "o", "--exact"], capsys)
    assert_user_error(res, name, needle)
    assert "warning" not in res.stderr
    with pytest.raises(DataError, match=needle):
        load_volume(path)


def test_explain_alpha_outside_0_1_is_one_line(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for alpha in ("2", "nan", "-0.1"):
        res = run_main(
            ["explain", ckpt, _image(tmp_path / "a.png"), "--out", tmp_path / "x.png",
             "--no-teacher", "--alpha", alpha],
            capsys,
        )  # fmt: skip
        assert_user_error(res, "--alpha", alpha)
        assert not (tmp_path / "x.png").exists()


def test_evaluate_negative_grid_is_one_line(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = run_main(
        ["evaluate", ckpt, "--dataset", "folder", "--data-root", folder_dataset(tmp_path / "ds"),
         "--out", tmp_path / "o", "--grid", "-1"],
        capsys,
    )  # fmt: skip
    assert_user_error(res, "--grid", "-1")


def test_a_broken_link_among_the_images_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dangling ``c8.png`` link was skipped without a word: the sample vanished from the set."""
    data = folder_dataset(tmp_path / "ds", n=2)
    (data / "images" / "c8.png").symlink_to(tmp_path / "nowhere.png")
    res = run_main(["data", "check", "folder", "--root", data], capsys)
    assert res.returncode == 1, res.stdout
    assert "c8.png" in res.stdout


def test_a_fresh_run_never_replaces_files_already_in_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from tiny_models import TINY_MSF

    data = folder_dataset(tmp_path / "ds", n=4)
    (data / "split.json").write_text('{"mine": true}')
    cfg = {
        "model": {"name": "medspikeformer", **TINY_MSF},
        "data": {"dataset": "folder", "root": str(data), "size": 32, "split_spec": "50/25/25",
                 "augment": "none", "cache_dir": False, "num_workers": 0},
        "train": {"epochs": 1, "batch_size": 2, "progress": False},
        "teacher": {"mode": "none"},
    }  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = run_main(["train", "--config", tmp_path / "c.yaml", "--out", data], capsys)
    assert (data / "split.json").read_text() == '{"mine": true}'
    assert_user_error(res, "split.json")


def test_a_huge_batch_size_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medspikeformer.engine.config import config_from_dict, validate_config
    from medspikeformer.errors import ConfigError

    cfg = config_from_dict({"train": {"batch_size": 10**20}})
    with pytest.raises(ConfigError, match="batch_size"):
        validate_config(cfg)


@pytest.mark.parametrize("writer", ["outputs", "data cache"])
def test_an_interrupt_just_after_a_temp_file_is_created_leaves_nothing(
    writer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM in ``evaluate`` left ``.tmp-*.npz`` in the data cache: the interrupt landed after
    ``mkstemp`` had created the file and before the writer's cleanup guard held its name."""
    from medspikeformer.data.cache import ArrayCache
    from medspikeformer.outputs import atomic_write_bytes

    out = tmp_path / "out"
    out.mkdir()
    real_open = os.open

    def open_then_interrupt(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_CREAT:  # the temp file now exists; the interrupt arrives here
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    cache = ArrayCache(tmp_path / "cache")
    monkeypatch.setattr(ArrayCache, "path", lambda self, *args, **kwargs: out / "entry.npz")
    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        if writer == "outputs":
            atomic_write_bytes(out / "x.bin", b"1")
        else:
            image, mask = np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)
            cache.put(None, None, (4, 4), image, mask)
    assert list(out.iterdir()) == []


def test_a_training_size_evaluation_keeps_the_native_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both resolutions wrote to ``CKPT_DIR/eval-STEM-SPLIT``: the second run replaced the
    first run's summary.json without a word."""
    ck = tiny_checkpoint(tmp_path / "run")
    data = folder_dataset(tmp_path / "ds", n=3)
    common = ["evaluate", ck, "--dataset", "folder", "--data-root", data, "--split", "all"]
    common += ["--grid", "0", "--no-progress", "--cache-dir", "off"]
    for resolution in ("native", "training"):
        assert run_main([*common, "--resolution", resolution], capsys).returncode == 0
    native = json.loads((tmp_path / "run" / "eval-tiny-all" / "summary.json").read_text())
    training = json.loads(
        (tmp_path / "run" / "eval-tiny-all-training" / "summary.json").read_text()
    )
    assert (native["resolution"], training["resolution"]) == ("native", "training")
