"""Bad inputs (issue 6, part 3): every user mistake → one line naming the file and the problem,
a non-zero exit code, no traceback; ``data check`` finds all the data problems in one pass.

The data problems are written by ``badfiles.py``. Each is checked twice:

* ``medspikeformer data check`` on one folder holding *all* of them lists each, naming its file
  (exit 1; the real entry point in a subprocess);
* ``medspikeformer train`` on a folder holding only that problem fails fast with one
  ``error: <file>: <problem>`` line and exit 2 (in-process ``cli.main``; an escaping exception
  would fail the test like a traceback), also when the bad file is decoded in a DataLoader worker.

Non-binary masks are not an error for the loaders: they binarise at grey value > 127 (0/1 masks
are recognised as such); ``data check`` flags masks with more than 1 % of pixels in 32…223.
RGBA (alpha dropped), 16-bit (v·255/65535), grey (replicated) and grey+alpha images are converted
as ``medspikeformer.data.io`` documents; 2- and 5-channel and floating-point images are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from medspikeformer.errors import DataError

from .badfiles import (
    ACCEPTED,
    COVID_PROBLEMS,
    MONUSEG_PROBLEMS,
    PROBLEMS,
    XML_OK,
    binary_mask,
    make_covid_nifti,
    make_good_folder,
    make_monuseg,
    rgb,
    save_png,
)
from .helpers import TINY_MODEL, assert_user_error, error_lines, run_cli, run_main

TINY_TRAIN = {
    "model": {"name": "medspikeformer", **TINY_MODEL["medspikeformer"]},
    "data": {
        "dataset": "folder",
        "size": 32,
        "split_spec": "60/20/20",
        "train_split": "all",
        "val_split": "all",
        "augment": "none",
        "cache_dir": False,
        "num_workers": 0,
    },
    "teacher": {"mode": "none"},
    "train": {"epochs": 1, "batch_size": 2, "progress": False},
}


def train_config(tmp_path: Path, dataset: str, root: Path, **data: object) -> Path:
    cfg = {**TINY_TRAIN, "data": {**TINY_TRAIN["data"], "dataset": dataset, "root": str(root)}}
    cfg["data"].update(data)
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def check_json(dataset: str, root: Path) -> tuple[int, dict]:
    """``data check DATASET --root ROOT --json`` in a subprocess → (exit code, report)."""
    res = run_cli(["data", "check", dataset, "--root", root, "--json"])
    assert "Traceback" not in res.stdout + res.stderr, res.stderr
    return res.returncode, json.loads(res.stdout)


def lines_naming(problems: list[str], path: Path) -> list[str]:
    return [p for p in problems if str(path) in p]


# ----------------------------------------------------------------------------- data check


def test_data_check_lists_every_folder_problem_in_one_pass(tmp_path: Path) -> None:
    """One folder with all the problems: one run of ``data check`` reports each of them once."""
    root = make_good_folder(tmp_path / "ds")
    for problem in PROBLEMS.values():
        problem.make(root)
    ACCEPTED(root)
    code, report = check_json("folder", root)
    assert code == 1
    problems = report["problems"]
    for name, problem in PROBLEMS.items():
        hits = lines_naming(problems, root / problem.file)
        assert len(hits) == 1, f"{name}: {hits} in {problems}"
        for word in problem.words:
            assert word.lower() in hits[0].lower(), f"{name}: {word!r} not in {hits[0]!r}"
        assert "\n" not in hits[0]
    assert len(problems) == len(PROBLEMS), problems
    for accepted in ("rgba", "grey", "sixteen", "greyalpha", "good0"):
        assert not [p for p in problems if f"/{accepted}." in p], problems
    # The human-readable form lists the same problems, one line each, and exits 1.
    res = run_cli(["data", "check", "folder", "--root", root])
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
    for problem in PROBLEMS.values():
        assert [line for line in res.stdout.splitlines() if str(root / problem.file) in line]


def test_data_check_lists_every_monuseg_xml_problem_in_one_pass(tmp_path: Path) -> None:
    """Malformed, truncated, entity-bomb, external-entity and vertex-less XMLs; tif without xml
    and xml without tif: all in one report."""
    root = make_monuseg(tmp_path / "monuseg")
    test = root / "MoNuSegTestData"
    code, report = check_json("monuseg", root)
    assert code == 1
    problems = report["problems"]
    for name, (_, words) in MONUSEG_PROBLEMS.items():
        hits = lines_naming(problems, test / f"{name.replace(' ', '_')}.xml")
        assert len(hits) == 1, f"{name}: {problems}"
        for word in words:
            assert word.lower() in hits[0].lower(), f"{name}: {word!r} not in {hits[0]!r}"
    assert lines_naming(problems, test / "noxml.tif")
    assert lines_naming(problems, test / "notif.xml")
    assert len(problems) == len(MONUSEG_PROBLEMS) + 2, problems
    assert report["checked"] == 1  # the good case


def test_data_check_lists_every_nifti_problem_in_one_pass(tmp_path: Path) -> None:
    """COVID-19 NIfTI form: mismatched shapes, truncated volume, unpaired files in one report."""
    root = make_covid_nifti(tmp_path / "covid")
    code, report = check_json("covid19", root)
    assert code == 1
    problems = report["problems"]
    for name, (file, words) in COVID_PROBLEMS.items():
        hits = lines_naming(problems, root / file)
        assert hits, f"{name}: {problems}"
        for word in words:
            assert word.lower() in hits[0].lower(), f"{name}: {word!r} not in {hits[0]!r}"
    assert report["checked"] == 3  # the good case's 3 slices


# ----------------------------------------------------------------------------- loaders (train)


@pytest.mark.parametrize("name", [n for n, p in PROBLEMS.items() if p.loader_fails])
def test_training_on_a_bad_file_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """``train`` on a folder with this one problem: exit 2, ``error: <file>: <problem>``."""
    problem = PROBLEMS[name]
    root = make_good_folder(tmp_path / "ds")
    problem.make(root)
    cfg = train_config(tmp_path, "folder", root)
    res = run_main(["train", "--config", cfg, "--out", tmp_path / "run"], capsys)
    line = assert_user_error(res, str(root / problem.file), *problem.words)
    assert line.startswith(f"error: {root / problem.file}")
    assert not (tmp_path / "run" / ".lock").exists(), "lock left behind after a user error"


def test_bad_file_decoded_in_a_dataloader_worker_still_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``num_workers=2`` the error crosses a process boundary; still one line, exit 2."""
    root = make_good_folder(tmp_path / "ds")
    PROBLEMS["truncated image"].make(root)
    cfg = train_config(tmp_path, "folder", root, num_workers=2)
    res = run_main(["train", "--config", cfg, "--out", tmp_path / "run"], capsys)
    line = assert_user_error(res, str(root / "images/truncated.png"), "truncated")
    assert "worker" not in line and "Original Traceback" not in res.stderr


@pytest.mark.parametrize("name", ["truncated", "vertex not numeric", "entity bomb", "no regions"])
def test_training_on_malformed_monuseg_xml_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """A MoNuSeg folder with one bad XML: exit 2, one line naming the XML."""
    import tifffile

    test = tmp_path / "monuseg" / "MoNuSegTestData"
    test.mkdir(parents=True)
    for i in range(3):
        tifffile.imwrite(test / f"ok{i}.tif", rgb(i), photometric="rgb")
        (test / f"ok{i}.xml").write_text(XML_OK)
    xml, words = MONUSEG_PROBLEMS[name]
    tifffile.imwrite(test / "bad.tif", rgb(9), photometric="rgb")
    (test / "bad.xml").write_text(xml)
    cfg = train_config(tmp_path, "monuseg", tmp_path / "monuseg")
    res = run_main(["train", "--config", cfg, "--out", tmp_path / "run"], capsys)
    assert_user_error(res, str(test / "bad.xml"), *words)


def test_training_on_nifti_with_mismatched_shapes_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """COVID-19 NIfTI: a mask whose shape differs from its volume → exit 2, one line naming it."""
    root = make_covid_nifti(tmp_path / "covid")
    for name in ("case_trunc", "case_nomask"):
        (root / "COVID-19-CT-Seg_20cases" / f"{name}.nii.gz").unlink()
    (root / "Infection_Mask" / "case_trunc.nii.gz").unlink()
    (root / "Infection_Mask" / "case_novolume.nii.gz").unlink()
    cfg = train_config(tmp_path, "covid19", root)
    res = run_main(["train", "--config", cfg, "--out", tmp_path / "run"], capsys)
    assert_user_error(res, str(root / "Infection_Mask" / "case_shape.nii.gz"), "shape", "differs")


def test_empty_dataset_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """images/ and masks/ exist but hold nothing: check exits 1, train exits 2; both name it."""
    root = tmp_path / "empty"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    code, report = check_json("folder", root)
    assert code == 1 and lines_naming(report["problems"], root), report
    assert "no image/mask pairs" in report["problems"][0]
    cfg = train_config(tmp_path, "folder", root)
    res = run_main(["train", "--config", cfg, "--out", tmp_path / "run"], capsys)
    assert_user_error(res, str(root), "no image/mask pairs")


@pytest.mark.parametrize("dataset", ["kvasir", "busi", "monuseg", "covid19", "isic2018", "folder"])
def test_wrong_layout_for_the_named_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dataset: str
) -> None:
    """A folder in another dataset's layout: one line naming the root and the expected layout."""
    root = tmp_path / "wrong"
    if dataset == "folder":  # a Kvasir-SEG layout given as a generic folder
        save_png(root / "Kvasir-SEG" / "images" / "a.jpg", rgb(1))
        save_png(root / "Kvasir-SEG" / "masks" / "a.jpg", binary_mask())
    elif dataset == "kvasir":  # a BUSI layout given as Kvasir-SEG (whose own layout IS
        # images/ + masks/, so a generic folder would be a valid Kvasir-SEG root)
        save_png(root / "benign" / "benign (1).png", rgb(1))
        save_png(root / "benign" / "benign (1)_mask.png", binary_mask())
    else:  # a generic images/ + masks/ folder given as a named dataset
        make_good_folder(root)
    res = run_main(["data", "check", dataset, "--root", root], capsys)
    line = assert_user_error(res, str(root))
    assert "expected" in line or "not a" in line or "no " in line, line
    cfg = train_config(tmp_path, dataset, root)
    res = run_main(["train", "--config", cfg, "--out", tmp_path / "run"], capsys)
    assert_user_error(res, str(root))


def test_missing_dataset_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = run_main(["data", "check", "kvasir", "--root", tmp_path / "nowhere"], capsys)
    assert_user_error(res, str(tmp_path / "nowhere"), "not found")


# ----------------------------------------------------------------------------- documented handling


def test_non_binary_masks_are_refused_and_near_binary_ones_binarised(tmp_path: Path) -> None:
    """The one mask rule (issue 27, docs/data.md): a grey ramp is no binary mask and is refused
    naming its values (it was binarised at > 127 before); 0/1 masks are kept; near-binary
    masks (noise around 0/255, as JPEG gives) are thresholded and only a note for data check."""
    from medspikeformer.data import build_dataset
    from medspikeformer.data.io import read_mask

    grad = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    path = save_png(tmp_path / "grad.png", grad)
    with pytest.raises(DataError, match=r"grad\.png: mask is not binary.*256 values \{0, 1, 2"):
        read_mask(path)
    zero_one = save_png(tmp_path / "01.png", binary_mask(value=1))
    np.testing.assert_array_equal(read_mask(zero_one), binary_mask() > 0)
    # Through a dataset: the item's mask is exactly the mask, values in {0, 1}.
    root = tmp_path / "ds"
    save_png(root / "images" / "a.png", rgb(0, 4, 256))
    step = (grad > 127).astype(np.uint8) * 255
    save_png(root / "masks" / "a.png", step)
    ds = build_dataset("folder", root=root, split="all", size=(4, 256), cache_dir=False)
    mask = ds[0]["mask"][0].numpy()
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask, (grad > 127).astype(np.float32))
    # Slight noise around 0/255 (as JPEG gives) is not an error for data check.
    noisy = binary_mask().astype(np.int16)
    noisy += np.random.default_rng(0).integers(-20, 21, noisy.shape, dtype=np.int16)
    save_png(root / "images" / "b.png", rgb(1))
    save_png(root / "masks" / "b.png", np.clip(noisy, 0, 255).astype(np.uint8))
    (root / "images" / "a.png").unlink()
    (root / "masks" / "a.png").unlink()
    code, report = check_json("folder", root)
    assert code == 0, report
    assert report["masks_not_strictly_binary"] == 1


def test_unusual_channel_layouts_are_converted_as_documented(tmp_path: Path) -> None:
    """RGBA → RGB (alpha dropped), 16-bit → v·255/65535, grey and grey+alpha → grey; model input
    has the model's channel count in every case."""
    from medspikeformer.data import build_dataset
    from medspikeformer.data.io import read_image, to_model_input

    root = make_good_folder(tmp_path / "ds", n=1)
    expected = ACCEPTED(root)
    for name, want in expected.items():
        got = read_image(root / "images" / f"{name}.png")
        np.testing.assert_array_equal(got, want, err_msg=name)
        x = to_model_input(got, 3)
        assert x.shape == (3, *want.shape[:2]) and x.dtype.is_floating_point
    ds = build_dataset("folder", root=root, split="all", size=32, cache_dir=False)
    assert len(ds) == 5
    for i in range(len(ds)):
        assert ds[i]["image"].shape == (3, 32, 32)


# ----------------------------------------------------------------------------- config values


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--epochs", "-1"], ("train.epochs", "-1")),
        (["--epochs", "0"], ("train.epochs",)),
        (["--model", "nosuchmodel"], ("unknown model", "nosuchmodel")),
        (["--size", "33"], ("data.size", "33", "divisible")),
        (["--batch-size", "0"], ("train.batch_size",)),
        (["--lr", "-0.1"], ("optim.lr",)),
        (["--dataset", "nosuchdata"], ("unknown dataset", "nosuchdata")),
        (["--set", "train.nan_policy=sometimes"], ("train.nan_policy",)),
        (["--set", "train.no_such_key=1"], ("no_such_key",)),
    ],
)
def test_invalid_config_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], words: tuple[str, ...]
) -> None:
    """Invalid values → exit 2, one line naming the key and the value; nothing is written."""
    root = make_good_folder(tmp_path / "ds")
    cfg = train_config(tmp_path, "folder", root)
    res = run_main(["train", "--config", cfg, "--out", tmp_path / "run", *flags], capsys)
    assert_user_error(res, *words)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_invalid_config_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: medspikeformer\ntrain: [1, 2\n")
    res = run_main(["train", "--config", bad, "--out", tmp_path / "run"], capsys)
    assert_user_error(res, str(bad), "YAML")


def test_invalid_config_through_the_real_entry_point(tmp_path: Path) -> None:
    """The same contract through ``python -m medspikeformer`` (exit status, stderr)."""
    root = make_good_folder(tmp_path / "ds")
    cfg = train_config(tmp_path, "folder", root)
    res = run_cli(["train", "--config", cfg, "--out", tmp_path / "run", "--epochs", "-3"])
    assert_user_error(res, "train.epochs", "-3")
    assert error_lines(res.stderr)[0] == res.stderr.strip().splitlines()[-1]


# ----------------------------------------------------------------------------- output not writable


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    from medspikeformer.engine.checkpoint import build_payload, save_checkpoint

    from .helpers import tiny_model

    return save_checkpoint(
        tmp_path / "tiny.pt",
        build_payload(
            tiny_model(),
            train_config={"data": {"dataset": "synthetic", "size": 32, "in_channels": 3}},
        ),
    )


def test_output_directory_not_writable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: Path
) -> None:
    """Output paths that cannot be created → one line naming the path, exit 2.

    The tests run as root, for whom ``chmod`` does not stop writes, so "not writable" is made
    the honest way that holds for root too: the output lies *under a regular file*
    (``file.txt/run``), which no user can create (ENOTDIR).
    """
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file, not a folder")
    image = save_png(tmp_path / "img.png", rgb(0, 32, 32))
    root = make_good_folder(tmp_path / "ds")
    cfg = train_config(tmp_path, "folder", root)
    cases = {
        "train": ["train", "--config", cfg, "--out", blocker / "run"],
        "predict": ["predict", tiny_checkpoint, image, "--out", blocker / "pred"],
        "export onnx": ["export", tiny_checkpoint, "--onnx", blocker / "m.onnx", "--size", "32"],
        "export safetensors": ["export", tiny_checkpoint, "--safetensors", blocker / "w.st"],
        "evaluate": [
            "evaluate",
            tiny_checkpoint,
            "--dataset",
            "folder",
            "--data-root",
            root,
            "--split",
            "all",
            "--out",
            blocker / "eval",
        ],
        "data show": ["data", "show", "folder", "--root", root, "--out", blocker / "g.png"],
    }
    for what, args in cases.items():
        res = run_main(args, capsys)
        try:
            assert_user_error(res, str(blocker))
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None
    assert blocker.read_text() == "a regular file, not a folder"


def test_output_path_is_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: Path
) -> None:
    """An output *folder* argument naming an existing regular file is refused, file untouched."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    root = make_good_folder(tmp_path / "ds")
    image = save_png(tmp_path / "img.png", rgb(0, 32, 32))
    cfg = train_config(tmp_path, "folder", root)
    cases = {
        "train": ["train", "--config", cfg, "--out", blocker],
        "predict": ["predict", tiny_checkpoint, image, "--out", blocker],
        "evaluate": [
            "evaluate",
            tiny_checkpoint,
            "--dataset",
            "folder",
            "--data-root",
            root,
            "--split",
            "all",
            "--out",
            blocker,
        ],
    }
    for what, args in cases.items():
        res = run_main(args, capsys)
        try:
            assert_user_error(res, str(blocker))
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None
    assert blocker.read_text() == "keep me"


def test_predict_on_bad_images_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_checkpoint: Path
) -> None:
    """``predict`` on a truncated, an empty, a 5-channel or a missing image: one line each."""
    root = make_good_folder(tmp_path / "ds", n=1)
    for name in ("truncated image", "zero-byte image", "five channels", "float pixels"):
        PROBLEMS[name].make(root)
    cases = {
        root / "images/truncated.png": ("truncated",),
        root / "images/zero.png": ("empty",),
        root / "images/five.tif": ("unsupported",),
        root / "images/float.tif": ("unsupported",),
        tmp_path / "missing.png": ("not found",),
    }
    for path, words in cases.items():
        res = run_main(["predict", tiny_checkpoint, path, "--out", tmp_path / "p"], capsys)
        assert_user_error(res, str(path), *words)
    empty = tmp_path / "no_images"
    empty.mkdir()
    res = run_main(["predict", tiny_checkpoint, empty, "--out", tmp_path / "p"], capsys)
    assert_user_error(res)


def test_one_line_message_unwraps_a_worker_traceback() -> None:
    """The CLI's formatter keeps only the original message of an error re-raised from a worker."""
    from medspikeformer.cli import one_line_message
    from medspikeformer.errors import DataError

    wrapped = (
        "Caught DataError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "medspikeformer.errors.DataError: /d/a.png: unreadable image (image file is truncated)\n"
    )
    assert (
        one_line_message(DataError(wrapped))
        == "/d/a.png: unreadable image (image file is truncated)"
    )
    assert one_line_message(DataError("/d/a.png: empty file (0 bytes)")) == (
        "/d/a.png: empty file (0 bytes)"
    )
    assert "\n" not in one_line_message(DataError("first line\nsecond line"))
