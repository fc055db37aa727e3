"""Masks never read as empty by accident (issue 27, C): one decoding rule for every stored form,
a refusal naming the values otherwise, checked loader options, EXIF orientation, and a flag
when a split's masks are nearly all empty."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from medspikeformer.errors import ConfigError, DataError

from .helpers import run_main

H, W = 16, 20


def _truth() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[3:9, 4:12] = True
    return m


def _palette_image(indices: np.ndarray) -> Image.Image:
    im = Image.new("P", (indices.shape[1], indices.shape[0]))
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))  # VOC colours
    im.putdata(indices.flatten().tolist())
    return im


def _forms() -> dict[str, Image.Image]:
    t = _truth()
    red = np.zeros((H, W, 3), np.uint8)
    red[t] = (255, 0, 0)
    blue = np.zeros((H, W, 3), np.uint8)
    blue[t] = (0, 0, 255)
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 3] = t * 255  # annotation drawn as alpha on a transparent layer
    la = np.zeros((H, W, 2), np.uint8)
    la[..., 1] = t * 200
    return {
        "label_id_2.png": Image.fromarray(t.astype(np.uint8) * 2),
        "sixteen_bit_0_255.png": Image.fromarray(t.astype(np.uint16) * 255),
        "sixteen_bit_0_255.tif": Image.fromarray(t.astype(np.uint16) * 255),
        "red.png": Image.fromarray(red),
        "blue.png": Image.fromarray(blue),
        "palette_voc.png": _palette_image(t.astype(np.uint8)),
        "alpha_rgba.png": Image.fromarray(rgba, "RGBA"),
        "alpha_la.png": Image.fromarray(la, "LA"),
        "zero_one.png": Image.fromarray(t.astype(np.uint8)),
        "zero_255.png": Image.fromarray(t.astype(np.uint8) * 255),
    }


@pytest.mark.parametrize("name", list(_forms()))
def test_every_stored_form_of_a_binary_mask_reads_its_foreground(tmp_path: Path, name: str) -> None:
    from medspikeformer.data.io import read_mask

    path = tmp_path / name
    _forms()[name].save(path)
    np.testing.assert_array_equal(read_mask(path), _truth())


@pytest.mark.parametrize(
    ("name", "array", "needle"),
    [
        ("ids.png", np.array([[0, 1, 2, 0]] * 4, np.uint8), r"3 values \{0, 1, 2\}"),
        ("ids16.png", np.array([[0, 1, 2, 3]] * 4, np.uint16), r"4 values \{0, 1, 2, 3\}"),
        ("levels.png", np.array([[0, 100, 200, 0]] * 4, np.uint8), r"\{0, 100, 200\}"),
        ("no_zero.png", np.array([[1, 2, 1, 2]] * 4, np.uint8), r"\{1, 2\}"),
    ],
)
def test_multi_valued_masks_are_refused_naming_the_values(
    tmp_path: Path, name: str, array: np.ndarray, needle: str
) -> None:
    from medspikeformer.data.io import read_mask

    path = tmp_path / name
    Image.fromarray(array).save(path)
    with pytest.raises(DataError, match=rf"{name}: mask is not binary.*{needle}"):
        read_mask(path)


def test_two_colours_without_black_are_refused(tmp_path: Path) -> None:
    from medspikeformer.data.io import read_mask

    arr = np.full((H, W, 3), 255, np.uint8)
    arr[_truth()] = (255, 0, 0)  # red lesion on a white background
    Image.fromarray(arr).save(tmp_path / "white.png")
    with pytest.raises(DataError, match=r"white\.png: mask of two colours.*neither black"):
        read_mask(tmp_path / "white.png")


def test_exif_orientation_is_applied_to_images_and_masks(tmp_path: Path) -> None:
    from medspikeformer.data.io import read_image, read_mask

    t = _truth()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: a viewer rotates it 90° clockwise
    Image.fromarray(t.astype(np.uint8) * 255).save(tmp_path / "m.png", exif=exif)
    Image.fromarray(np.stack([t.astype(np.uint8) * 255] * 3, -1)).save(
        tmp_path / "i.jpg", exif=exif, quality=100
    )
    shown = np.rot90(t, k=-1)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), shown)
    assert read_image(tmp_path / "i.jpg").shape[:2] == shown.shape


# ------------------------------------------------------------------ the fuzzer over masks
@st.composite
def _mask_files(draw: st.DrawFn) -> tuple[str, Image.Image, np.ndarray | None]:
    """A mask file in a random stored form; the expected foreground when it is two-valued
    (one value 0), ``None`` when it must be refused."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    fg = rng.random((H, W)) < draw(st.floats(0.0, 1.0))
    form = draw(st.sampled_from(["grey8", "grey16", "rgb", "palette", "rgba", "la", "multi"]))
    value = draw(st.integers(1, 255))
    if form == "grey8":
        return "m.png", Image.fromarray(fg.astype(np.uint8) * value), fg
    if form == "grey16":
        v16 = draw(st.integers(1, 65535))
        return "m.tif", Image.fromarray(fg.astype(np.uint16) * v16), fg
    if form == "rgb":
        colour = draw(st.tuples(*[st.integers(0, 255)] * 3).filter(any))
        arr = np.zeros((H, W, 3), np.uint8)
        arr[fg] = colour
        return "m.png", Image.fromarray(arr), fg
    if form == "palette":
        return "m.png", _palette_image(fg.astype(np.uint8) * value), fg
    if form in ("rgba", "la"):
        # An alpha plane of one value everywhere is plain opacity, not an annotation (the colour
        # channels are read then): keep one transparent pixel so that the alpha is the mask.
        fg[0, 0] = False
        channels = 4 if form == "rgba" else 2
        arr = np.zeros((H, W, channels), np.uint8)
        arr[..., -1] = fg * value
        return "m.png", Image.fromarray(arr, "RGBA" if form == "rgba" else "LA"), fg
    values = draw(st.lists(st.integers(0, 120), min_size=3, max_size=6, unique=True))
    arr = np.asarray(values, np.uint8)[rng.integers(0, len(values), (H, W))]
    arr[0, : len(values)] = values  # every value present
    return "m.png", Image.fromarray(arr), None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=_mask_files())
def test_fuzz_mask_forms(tmp_path: Path, case: tuple[str, Image.Image, np.ndarray | None]) -> None:
    from medspikeformer.data.io import read_mask

    name, image, expected = case
    path = tmp_path / name
    image.save(path)
    if expected is None:
        with pytest.raises(DataError, match="mask is not binary"):
            read_mask(path)
        return
    got = read_mask(path)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------ loader options
@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("threshold", 300, "threshold=300"),
        ("threshold", -1, "threshold=-1"),
        ("threshold", "high", "threshold must be an integer"),
        ("threshold", True, "threshold must be an integer"),
        ("label_map", "maybe", "label_map must be true or false"),
        ("mask_suffix", 5, "mask_suffix must be text"),
    ],
)
def test_loader_options_are_type_and_range_checked(
    tmp_path: Path, option: str, value: object, needle: str
) -> None:
    from medspikeformer.data import build_source

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ConfigError, match=needle):
        build_source("folder", tmp_path, **{option: value})


def test_decathlon_foreground_only_maybe_is_refused(tmp_path: Path) -> None:
    from medspikeformer.data.base import check_loader_option

    with pytest.raises(ConfigError, match="foreground_only must be true or false"):
        check_loader_option("decathlon", "foreground_only", "maybe", False)


@given(
    value=st.one_of(
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=True),
        st.text(max_size=5),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )
)
@settings(max_examples=80, deadline=None)
def test_fuzz_loader_option_threshold(value: object) -> None:
    """Any value: accepted only as an integer in 0…254, else one ConfigError line."""
    from medspikeformer.data.base import check_loader_option

    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 254
    if ok:
        check_loader_option("folder", "threshold", value, 127)
    else:
        with pytest.raises(ConfigError) as info:
            check_loader_option("folder", "threshold", value, 127)
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------ near-empty splits
def _folder(root: Path, masks: list[np.ndarray]) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i, m in enumerate(masks):
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(root / "images" / f"c{i}.png")
        Image.fromarray(m).save(root / "masks" / f"c{i}.png")
    return root


def test_data_check_flags_a_dataset_whose_masks_all_read_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = np.zeros((H, W), np.uint8)
    data = _folder(tmp_path / "ds", [empty] * 5)
    res = run_main(["data", "check", "folder", "--root", data], capsys)
    assert res.returncode == 1
    assert "5 of 5 masks are empty" in res.stdout


def test_data_check_accepts_a_dataset_with_some_empty_masks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = np.zeros((H, W), np.uint8)
    data = _folder(tmp_path / "ds", [empty, empty, _truth().astype(np.uint8) * 255])
    res = run_main(["data", "check", "folder", "--root", data], capsys)
    assert res.returncode == 0, res.stdout
    assert "no problems found" in res.stdout


def test_training_warns_when_a_split_is_nearly_all_empty(tmp_path: Path) -> None:
    from medspikeformer.data import build_dataset
    from medspikeformer.data.check import warn_if_nearly_empty

    data = _folder(tmp_path / "ds", [np.zeros((H, W), np.uint8)] * 4)
    ds = build_dataset("folder", root=data, split="all", size=(16, 16), cache_dir=False)
    with pytest.warns(UserWarning, match=r"'train' split.*4 of 4 masks are empty"):
        warn_if_nearly_empty(ds, "dataset 'folder', 'train' split")
    data2 = _folder(tmp_path / "ds2", [_truth().astype(np.uint8)] * 4)
    ds2 = build_dataset("folder", root=data2, split="all", size=(16, 16), cache_dir=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_nearly_empty(ds2, "x")


def test_train_command_warns_on_all_empty_masks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from tiny_models import TINY_MSF

    data = _folder(tmp_path / "ds", [np.zeros((H, W), np.uint8)] * 6)
    cfg = {
        "model": {"name": "medspikeformer", **TINY_MSF},
        "data": {
            "dataset": "folder",
            "root": str(data),
            "size": 16,
            "split_spec": "50/25/25",
            "augment": "none",
            "cache_dir": False,
        },
        "train": {"epochs": 1, "batch_size": 2, "progress": False},
        "teacher": {"mode": "none"},
        "out": str(tmp_path / "run"),
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.warns(UserWarning, match="masks are empty"):
        res = run_main(["train", "--config", path], capsys)
    assert res.returncode == 0, res.stderr
