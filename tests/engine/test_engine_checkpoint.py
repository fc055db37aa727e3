"""Checkpoints: round trip, atomic writes, refusal of code-running pickles, wrong-model errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from medspikeformer import create_model
from medspikeformer.engine import checkpoint as ck
from medspikeformer.engine.checkpoint import (
    build_payload,
    export_safetensors,
    load_checkpoint,
    load_model,
    load_weights_into,
    save_checkpoint,
)
from medspikeformer.errors import CheckpointError
from tiny_models import TINY_UNET

from .helpers import TINY_MODEL


def _tiny(**over):
    opts = {k: v for k, v in TINY_MODEL.items() if k != "name"}
    opts.update(over)
    return create_model("medspikeformer", **opts)


def _save(model, path: Path, **kw) -> Path:
    return save_checkpoint(path, build_payload(model, epoch=3, metrics={"val_miou": 0.5}, **kw))


def test_round_trip_rebuilds_the_same_model(tmp_path: Path) -> None:
    model = _tiny().eval()
    path = _save(model, tmp_path / "m.pt", train_config={"seed": 41})
    loaded, meta = load_model(path)
    assert meta["format"] == "medspikeformer-checkpoint" and meta["format_version"] == 1
    assert meta["model_name"] == "medspikeformer" and meta["epoch"] == 3
    assert meta["metrics"] == {"val_miou": 0.5} and meta["train_config"] == {"seed": 41}
    assert meta["package_version"]
    assert not loaded.training
    assert loaded.config == model.config
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_failed_write_leaves_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    first = _tiny()
    _save(first, path)
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck.os, "fsync", broken_fsync)
    second = _tiny(base_channels=8)
    # A full disk is a one-line error naming the file (no OSError traceback).
    with pytest.raises(CheckpointError, match=r"last\.pt.*No space left"):
        _save(second, path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # old checkpoint untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left
    assert load_checkpoint(path)["model_config"]["base_channels"] == 4


def test_write_is_replace_of_a_complete_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src).name, Path(src).stat().st_size))
        real_replace(src, dst)

    monkeypatch.setattr(ck.os, "replace", spy)
    path = _save(_tiny(), tmp_path / "best.pt")
    assert len(seen) == 1
    name, size = seen[0]
    assert name.startswith(".best.pt.") and name.endswith(".tmp")
    assert size == path.stat().st_size


class _RunsCode:
    """Unpickling this would create a marker file (what an attacker's payload would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_code_running_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save(
        {"format": "medspikeformer-checkpoint", "format_version": 1, "x": _RunsCode(marker)}, evil
    )
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(evil)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_model(evil)
    assert not marker.exists()
    # A raw (non-zip) pickle with the same payload is refused too.
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_unrestricted_pickle_would_have_run_it(tmp_path: Path) -> None:
    """The marker mechanism works, so the refusal test above can fail."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_RunsCode(marker)))
    assert marker.exists()


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "foreign", "missing", "dir"])
def test_not_a_checkpoint(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.pt"
    if kind == "text":
        path.write_text("hello, I am a README\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        _save(_tiny(), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "dir":
        path.mkdir()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_wrong_model_names_both(tmp_path: Path) -> None:
    path = _save(_tiny(), tmp_path / "small.pt")
    bigger = _tiny(base_channels=8)
    with pytest.raises(CheckpointError) as info:
        load_weights_into(bigger, path)
    msg = str(info.value)
    assert "small.pt" in msg and "base_channels: checkpoint 4, this run 8" in msg
    assert "--set model.base_channels=4" in msg
    unet = create_model("unet", **TINY_UNET)
    with pytest.raises(CheckpointError, match=r"holds model 'medspikeformer', not the 'unet'"):
        load_weights_into(unet, path)
    with pytest.raises(CheckpointError, match="'unet' was asked for"):
        load_model(path, expected_model="unet")


def test_tampered_config_gives_checkpoint_error(tmp_path: Path) -> None:
    payload = build_payload(_tiny())
    payload["model_config"]["base_channels"] = 8  # weights no longer fit
    path = save_checkpoint(tmp_path / "t.pt", payload)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(path)
    payload["model_name"] = "no_such_model"
    path = save_checkpoint(tmp_path / "u.pt", payload)
    with pytest.raises(CheckpointError, match="cannot rebuild model 'no_such_model'"):
        load_model(path)


def test_payload_that_weights_only_cannot_read_is_refused_at_save(tmp_path: Path) -> None:
    payload = build_payload(_tiny())
    payload["rng"] = np.random.get_state()  # a numpy array inside: not weights_only-safe
    with pytest.raises(ValueError, match="weights_only"):
        save_checkpoint(tmp_path / "n.pt", payload)
    assert not (tmp_path / "n.pt").exists()


def test_export_safetensors(tmp_path: Path) -> None:
    from safetensors import safe_open

    model = _tiny()
    path = _save(model, tmp_path / "m.pt")
    out = export_safetensors(path, tmp_path / "m.safetensors")
    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
        keys = set(fh.keys())
        assert keys == set(model.state_dict())
        for k, v in model.state_dict().items():
            assert torch.equal(fh.get_tensor(k), v)
    assert meta["model_name"] == "medspikeformer"
    assert '"base_channels": 4' in meta["model_config"]
