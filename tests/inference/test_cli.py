"""End to end through the command line on a tiny checkpoint in a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.cli import main
from medspikeformer.data import build_dataset

from .helpers import SIZE, make_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """best.pt + last.pt (with teacher) + split.json, like a training run leaves them."""
    folder = tmp_path_factory.mktemp("run")
    make_checkpoint(folder, with_teacher=True)
    ds = build_dataset(
        "synthetic",
        split="train",
        size=SIZE,
        split_spec="60/20/20",
        num_samples=10,
        cache_dir=False,
    )
    ds.save_split(folder / "split.json")
    return folder


def test_evaluate_uses_the_run_split(run_dir, tmp_path, capsys):
    from medspikeformer.engine.checkpoint import load_model
    from medspikeformer.inference import evaluate

    out = tmp_path / "ev"
    rc = main(["evaluate", str(run_dir / "best.pt"), "--out", str(out), "--no-progress"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["info"]["split_from"].endswith("split.json")
    ids = json.loads((run_dir / "split.json").read_text())["ids"]["test"]
    rows = (out / "per_image.csv").read_text().splitlines()
    assert sorted(r.split(",")[0] for r in rows[1:]) == sorted(ids) and len(ids) == 2
    # the same numbers as the Python API on the same split
    model, _ = load_model(run_dir / "best.pt")
    ds = build_dataset(
        "synthetic", split="test", size=SIZE, split_spec=str(run_dir / "split.json"),
        num_samples=10, cache_dir=False,
    )  # fmt: skip
    expected = evaluate(model, ds, device="cpu").metrics
    for key in ("miou", "dsc", "acc", "spe", "sen", "mean_dice", "mean_iou"):
        assert summary["metrics"][key] == pytest.approx(expected[key], abs=1e-12)
    assert (out / "summary.md").read_text().count("|") > 10
    assert Image.open(out / "qualitative.png").size == (800, 2 * 200 + 60)
    assert "mIoU" in capsys.readouterr().out


def test_evaluate_tta_and_threshold(run_dir, tmp_path):
    out = tmp_path / "ev"
    rc = main(
        ["evaluate", str(run_dir / "best.pt"), "--out", str(out), "--tta", "--threshold", "0.3",
         "--split", "all", "--grid", "0", "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tta_flip"] is True and summary["threshold"] == 0.3
    assert summary["metrics"]["num_images"] == 10
    assert not (out / "qualitative.png").exists()


def test_predict_cli(run_dir, tmp_path):
    import tifffile

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(src / "a.png")
    tifffile.imwrite(src / "b.tif", rng.integers(0, 256, (41, 33, 3), dtype=np.uint8))
    out = tmp_path / "out"
    for mode in ("sliding", "resize"):
        rc = main(
            ["predict", str(run_dir / "best.pt"), str(src), "--out", str(out / mode),
             "--mode", mode, "--overlay", "--no-progress"]
        )  # fmt: skip
        assert rc == 0
        assert np.asarray(Image.open(out / mode / "a_mask.png")).shape == (70, 90)
        assert np.asarray(Image.open(out / mode / "b_mask.png")).shape == (41, 33)
        assert Image.open(out / mode / "a_overlay.png").size == (90, 70)


def test_evaluate_a_labelled_folder_with_other_names(run_dir, tmp_path):
    """A new folder whose masks are named otherwise: evaluate takes the loader options train
    takes (``-o`` / ``--set data.options.KEY=VALUE``)."""
    root = tmp_path / "mine"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(2)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            root / "images" / f"c{i}.png"
        )
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[4:12, 4:12] = 255
        Image.fromarray(mask).save(root / "labels" / f"c{i}_seg.png")
    out = tmp_path / "ev"
    rc = main(["evaluate", str(run_dir / "best.pt"), "--dataset", "folder", "--data-root",
               str(root), "--split", "all", "-o", "mask_dir=labels",
               "--set", "data.options.mask_suffix=_seg", "--out", str(out), "--no-progress",
               "--grid", "0"])  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["info"]["dataset"] == "folder" and summary["metrics"]["num_images"] == 4
    assert main(["evaluate", str(run_dir / "best.pt"), "--set", "train.epochs=3"]) == 2


def test_predict_on_a_folder_says_what_it_skips_and_reads_subfolders_when_asked(
    run_dir, tmp_path, capsys
):
    src = tmp_path / "in"
    (src / "more").mkdir(parents=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / "more" / "a.png")
    (src / "notes.txt").write_text("not an image")
    ckpt = str(run_dir / "best.pt")
    assert main(["predict", ckpt, str(src), "--out", str(tmp_path / "flat"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "not read: 1 subfolder(s) (--recursive reads them), 1 file(s) of other types" in err
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["a_mask.png"]
    rc = main(["predict", ckpt, str(src), "--out", str(tmp_path / "deep"), "--recursive",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["a-2_mask.png", "a_mask.png"]
    assert "subfolder" not in capsys.readouterr().err


def test_predict_and_evaluate_optimise_unless_exact(run_dir, tmp_path, monkeypatch):
    """predict/evaluate load the model optimised for inference by default; --exact runs it as
    trained (the load is observed, and both paths write their outputs)."""
    import medspikeformer.inference.context as context

    seen: list[bool] = []
    real = context.load_context

    def spy(*args, optimize=False, **kwargs):
        seen.append(optimize)
        return real(*args, optimize=optimize, **kwargs)

    monkeypatch.setattr(context, "load_context", spy)
    img = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
        img
    )
    for extra in ([], ["--exact"]):
        out = tmp_path / f"p{len(extra)}"
        assert main(["predict", str(run_dir / "best.pt"), str(img), "--out", str(out),
                     "--no-progress", *extra]) == 0  # fmt: skip
        assert (out / "x_mask.png").is_file()
        ev = tmp_path / f"e{len(extra)}"
        assert main(["evaluate", str(run_dir / "best.pt"), "--out", str(ev), "--split", "all",
                     "--grid", "0", "--no-progress", *extra]) == 0  # fmt: skip
        assert (ev / "summary.json").is_file()
    assert seen == [True, True, False, False]


def test_explain_draws_student_and_teacher(run_dir, tmp_path, capsys):
    img = tmp_path / "x.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8)).save(
        img
    )
    out = tmp_path / "heat.png"
    assert main(["explain", str(run_dir / "best.pt"), str(img), "--out", str(out)]) == 0
    assert "last.pt" in capsys.readouterr().err
    # 4 stages + image column, two rows (student, teacher) and a title line
    assert Image.open(out).size == (5 * 220, 2 * 220 + 30)
    solo = tmp_path / "solo.png"
    main(["explain", str(run_dir / "best.pt"), str(img), "--out", str(solo), "--no-teacher"])
    assert Image.open(solo).size == (5 * 220, 220 + 30)


def test_explain_with_a_teacher_checkpoint(run_dir, tmp_path):
    from medspikeformer.engine.checkpoint import build_payload, load_model, save_checkpoint
    from medspikeformer.models import build_teacher

    student, _ = load_model(run_dir / "best.pt")
    teacher = build_teacher(student)
    teacher_ckpt = save_checkpoint(tmp_path / "teacher.pt", build_payload(teacher))
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "best.pt").write_bytes((run_dir / "best.pt").read_bytes())  # no last.pt beside it
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(img)
    out = tmp_path / "h.png"
    args = ["explain", str(lone / "best.pt"), str(img), "--out", str(out)]
    assert main(args) == 0
    assert Image.open(out).size[1] == 220 + 30  # no teacher found: one row
    assert main([*args, "--teacher", str(teacher_ckpt)]) == 0
    assert Image.open(out).size[1] == 2 * 220 + 30


def test_export_cli(run_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency")
    import onnxruntime as ort
    from safetensors.torch import load_file

    onnx_path, st_path = tmp_path / "m.onnx", tmp_path / "m.safetensors"
    rc = main(
        ["export", str(run_dir / "best.pt"), "--onnx", str(onnx_path),
         "--safetensors", str(st_path)]
    )  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "max |Δlogit|" in err and "% of mask pixels differ" in err
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [3, SIZE, SIZE]
    # a binary model's file says how to use it too
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["num_classes"] == "1" and meta["activation"] == "sigmoid"
    assert meta["input_size"] == f"{SIZE}x{SIZE}" and meta["input_channels"] == "3"
    assert meta["threshold"] == "0.5" and meta["preprocessing_scale"] == "uint8 / 255"
    weights = load_file(str(st_path))
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    assert weights.keys() == ckpt["state_dict"].keys()


@pytest.mark.parametrize(
    "argv_tail",
    [
        ["evaluate", "{missing}"],
        ["predict", "{ckpt}", "{missing_img}", "--out", "{tmp}"],
        ["explain", "{ckpt}", "{missing_img}", "--out", "{tmp}/h.png"],
        ["export", "{ckpt}"],
        ["predict", "{ckpt}", "{tmp}", "--out", "{tmp}/o", "--overlap", "1.5"],
        ["evaluate", "{ckpt}", "--in-channels", "1", "--out", "{tmp}/e"],
    ],
)
def test_user_errors_are_one_line(run_dir, tmp_path, capsys, argv_tail):
    fill = {
        "missing": str(tmp_path / "nope.pt"),
        "ckpt": str(run_dir / "best.pt"),
        "missing_img": str(tmp_path / "nope.png"),
        "tmp": str(tmp_path),
    }
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "z.png")
    argv = [a.format(**fill) for a in argv_tail]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_cli_defaults_match_the_library():
    from medspikeformer.cli import predict as cli_predict
    from medspikeformer.inference import predict as lib

    assert cli_predict.DEFAULT_MAX_PIXELS == lib.DEFAULT_MAX_PIXELS
    assert cli_predict.DEFAULT_BLOCK == lib.DEFAULT_BLOCK


def test_explain_without_out_writes_beside_the_checkpoint(run_dir, tmp_path, monkeypatch, capsys):
    """Not silently into the current folder: CKPT_DIR/explain-<image stem>.png, and it says so."""
    img = tmp_path / "pic.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), np.uint8)).save(img)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert main(["explain", str(run_dir / "best.pt"), str(img), "--no-teacher"]) == 0
    expected = run_dir / "explain-pic.png"
    assert expected.is_file() and not list(cwd.iterdir())
    assert str(expected) in capsys.readouterr().err
