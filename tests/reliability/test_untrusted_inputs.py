"""Untrusted files decide nothing (issue 27, A): a checkpoint cannot ask for unbounded compute
or choose where the tool writes, and a file name cannot drive the terminal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.engine.checkpoint import build_payload, load_model, save_checkpoint
from medspikeformer.errors import CheckpointError, ConfigError

from .helpers import assert_user_error, folder_dataset, run_main, tiny_checkpoint, tiny_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


# ------------------------------------------------------------------ A.2 bounded model options
@pytest.mark.parametrize(
    ("key", "value"), [("timesteps", 100_000), ("n_kv", 10**9), ("num_heads", 4096)]
)
def test_checkpoint_asking_for_unbounded_compute_is_refused_before_building(
    ckpt: Path, tmp_path: Path, key: str, value: int
) -> None:
    # timesteps, n_kv and num_heads change no weight's shape: the meta-shape check passes them
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    data["model_config"][key] = value
    bad = tmp_path / "huge.pt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match=rf"huge\.pt.*{key} = {value} exceeds"):
        load_model(bad)


def test_unbounded_timesteps_through_predict_is_one_line(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    data["model_config"]["timesteps"] = 1_000_000
    bad = tmp_path / "t.pt"
    torch.save(data, bad)
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    res = run_main(["predict", bad, img, "--out", tmp_path / "o"], capsys)
    assert_user_error(res, "t.pt", "timesteps")
    assert not (tmp_path / "o").exists()


def test_every_bound_is_enforced_by_create_model() -> None:
    from medspikeformer import create_model
    from medspikeformer.models.base import OPTION_LIMITS

    for name, keys in {
        "medspikeformer": ("in_channels", "base_channels", "num_units", "timesteps", "head_dim"),
        "unet": ("in_channels", "base_channels", "num_levels", "num_res_units"),
    }.items():
        for key in (*keys, "num_classes", "n_kv", "num_heads"):
            if name == "unet" and key in ("n_kv", "num_heads"):
                continue
            with pytest.raises(ConfigError, match=f"{key} = "):
                create_model(name, **{key: OPTION_LIMITS[key] + 1})


# ------------------------------------------------------------------ A.3 no output location from a file
def test_evaluate_never_writes_where_the_checkpoint_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "chosen-by-the-author"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MEDSPIKEFORMER_CACHE", raising=False)
    data = folder_dataset(tmp_path / "ds")
    ckpt = save_checkpoint(
        tmp_path / "c.pt",
        build_payload(
            tiny_model(),
            train_config={
                "data": {
                    "dataset": "folder",
                    "root": str(data),
                    "size": 32,
                    "in_channels": 3,
                    "cache_dir": str(chosen),
                }
            },
        ),
    )
    res = run_main(["evaluate", ckpt, "--split", "all", "--grid", "0"], capsys)
    assert res.returncode == 0, res.stderr
    assert not chosen.exists()
    assert (tmp_path / "xdg" / "medspikeformer").exists()  # the user's own default cache


# ------------------------------------------------------------------ A.4 control characters
def test_printable_escapes_every_control_character() -> None:
    from medspikeformer.errors import printable

    for ch in ["\x1b", "\x07", "\n", "\r", "\t", "\x7f", "\x9b", "\u2028"]:
        out = printable(f"a{ch}b")
        assert out.isprintable() and "\\" in out, (ch, out)
    assert printable("plain name é.png") == "plain name é.png"


def test_data_check_prints_hostile_names_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = folder_dataset(tmp_path / "ds", n=2)
    hostile = "evil\x1b]0;owned\x07\x1b[2J\nname.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(data / "images" / hostile)
    res = run_main(["data", "check", "folder", "--root", data], capsys)
    assert res.returncode == 1
    out = res.stdout + res.stderr
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\nname.png" in out


def test_error_line_escapes_control_characters_in_a_path(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = run_main(["predict", ckpt, tmp_path / "no\x1b[31m\nsuch.png", "--out", tmp_path], capsys)
    line = assert_user_error(res, "no\\x1b[31m\\nsuch.png")
    assert "\x1b" not in res.stderr
    assert line.isprintable()
