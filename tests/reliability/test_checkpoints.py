"""Untrusted checkpoints (issue 6, part 2).

* Loading goes through ``torch.load(weights_only=True)`` only (the source-tree scan is in
  ``test_source_policy.py``).
* A checkpoint crafted to run code when unpickled (``__reduce__`` that creates a marker file) is
  refused with a one-line ``CheckpointError`` and the marker is never created — through the Python
  API and through the real command line. A control test proves that the crafted file does run code
  under an unrestricted unpickler, so the refusal tests can fail.
* Checkpoints record model name, config and package version; the wrong model, another config, a
  file that is not a checkpoint (random bytes, an image, an empty or truncated file, a bare tensor,
  a directory) all give clear errors.
* Weights export as safetensors and round-trip: same tensors, and a model rebuilt from the file's
  metadata computes the same outputs.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medspikeformer import __version__, create_model
from medspikeformer.engine.checkpoint import (
    build_payload,
    export_safetensors,
    load_checkpoint,
    load_model,
    load_weights_into,
    save_checkpoint,
)
from medspikeformer.errors import CheckpointError

from .helpers import TINY_MODEL, assert_user_error, cli_env, run_cli, run_main, tiny_model


class MakeMarker:
    """Unpickling an instance calls ``open(path, "w")``: it creates ``path`` (the 'payload')."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def _hostile_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """Crafted checkpoints, each of which would create ``marker`` if unpickled unsafely."""
    files = {}
    files["bare object"] = tmp_path / "bare.pt"
    torch.save(MakeMarker(marker), files["bare object"])
    # A payload that looks like a real checkpoint, with the hostile object nested inside.
    model = tiny_model()
    payload = build_payload(model, epoch=1)
    payload["metrics"] = {"miou": MakeMarker(marker)}
    files["nested in a valid payload"] = tmp_path / "nested.pt"
    torch.save(payload, files["nested in a valid payload"])
    files["legacy (non-zip) torch format"] = tmp_path / "legacy.pt"
    torch.save(
        {"format": "medspikeformer-checkpoint", "x": MakeMarker(marker)},
        files["legacy (non-zip) torch format"],
        _use_new_zipfile_serialization=False,
    )
    files["raw pickle"] = tmp_path / "raw.pt"
    with open(files["raw pickle"], "wb") as fh:
        pickle.dump(MakeMarker(marker), fh, protocol=2)
    return files


def test_crafted_checkpoints_really_run_code_when_loaded_unsafely(tmp_path: Path) -> None:
    """Control: an unrestricted unpickler (in a child process) does create the marker."""
    marker = tmp_path / "pwned"
    files = _hostile_files(tmp_path, marker)
    for what, path in files.items():
        if marker.exists():
            marker.unlink()
        if what == "raw pickle":
            code = f"import pickle; pickle.load(open({str(path)!r}, 'rb'))"
        else:
            code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
        subprocess.run(  # unsafe-load-ok: the child process proves the fixture is hostile
            [sys.executable, "-c", code], env=cli_env(), capture_output=True, check=False
        )
        assert marker.exists(), (
            f"{what}: crafted file did not run code; the refusal tests prove nothing"
        )


@pytest.mark.parametrize(
    "what",
    ["bare object", "nested in a valid payload", "legacy (non-zip) torch format", "raw pickle"],
)
def test_hostile_checkpoint_is_refused_and_runs_nothing(tmp_path: Path, what: str) -> None:
    """load_checkpoint / load_model refuse the crafted file with a one-line CheckpointError."""
    marker = tmp_path / "pwned"
    path = _hostile_files(tmp_path, marker)[what]
    for loader in (load_checkpoint, lambda p: load_model(p)):
        with pytest.raises(CheckpointError) as info:
            loader(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message, message
        assert not marker.exists(), f"{what}: loading ran the crafted code"
    assert "refused" in str(info.value) or "not a readable checkpoint" in str(info.value)


def test_hostile_checkpoint_refused_by_the_command_line(tmp_path: Path) -> None:
    """`predict` and `export` on the crafted file: exit 2, one error line naming it, no marker."""
    marker = tmp_path / "pwned"
    path = _hostile_files(tmp_path, marker)["nested in a valid payload"]
    image = tmp_path / "img.png"
    from PIL import Image

    Image.new("RGB", (32, 32), (10, 20, 30)).save(image)
    res = run_cli(["predict", path, image, "--out", tmp_path / "pred"])
    assert_user_error(res, str(path))
    res = run_cli(["export", path, "--safetensors", tmp_path / "w.safetensors"])
    assert_user_error(res, str(path))
    assert not marker.exists()
    assert not (tmp_path / "w.safetensors").exists()


def test_checkpoint_records_model_config_and_version(tmp_path: Path) -> None:
    """The payload names model, config and package version; load_model rebuilds it exactly."""
    model = tiny_model()
    path = save_checkpoint(tmp_path / "a.pt", build_payload(model, epoch=3))
    ckpt = load_checkpoint(path)
    assert ckpt["model_name"] == model.model_name
    assert ckpt["model_config"] == model.config
    assert ckpt["package_version"] == __version__
    rebuilt, _ = load_model(path)
    x = torch.rand(1, model.in_channels, 32, 32)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def _not_checkpoints(tmp_path: Path) -> dict[str, Path]:
    good = save_checkpoint(tmp_path / "good.pt", build_payload(tiny_model()))
    data = good.read_bytes()
    files = {
        "random bytes": os.urandom(4096),
        "empty file": b"",
        "truncated checkpoint": data[: len(data) // 2],
        "checkpoint with a flipped header": bytes([data[0] ^ 0xFF]) + data[1:],
    }
    out = {}
    for name, blob in files.items():
        p = tmp_path / (name.replace(" ", "_") + ".pt")
        p.write_bytes(blob)
        out[name] = p
    from PIL import Image

    out["a PNG image"] = tmp_path / "image.pt"
    Image.new("RGB", (8, 8)).save(out["a PNG image"], format="PNG")
    out["a bare tensor"] = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), out["a bare tensor"])
    out["a state_dict without metadata"] = tmp_path / "state_dict.pt"
    torch.save(tiny_model().state_dict(), out["a state_dict without metadata"])
    out["a directory"] = tmp_path / "dir.pt"
    out["a directory"].mkdir()
    out["a missing file"] = tmp_path / "missing.pt"
    newer = build_payload(tiny_model())
    newer["format_version"] = 99
    out["a newer format version"] = tmp_path / "newer.pt"
    torch.save(newer, out["a newer format version"])
    return out


def test_files_that_are_not_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    """Each non-checkpoint gives a one-line CheckpointError that names the file."""
    for what, path in _not_checkpoints(tmp_path).items():
        with pytest.raises(CheckpointError) as info:
            load_model(path)
        message = str(info.value)
        assert str(path) in message, (what, message)
        assert "\n" not in message, (what, message)


def test_not_a_checkpoint_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI turns a non-checkpoint into exit 2 + one error line (no traceback)."""
    files = _not_checkpoints(tmp_path)
    image = tmp_path / "img.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    for path in files.values():
        res = run_main(["export", path, "--safetensors", tmp_path / "o.safetensors"], capsys)
        assert_user_error(res, str(path))
        res = run_main(["predict", path, image, "--out", tmp_path / "pred"], capsys)
        assert_user_error(res, str(path))
    assert not (tmp_path / "o.safetensors").exists()


def test_wrong_model_gives_a_clear_error(tmp_path: Path) -> None:
    """Weights of one model/config loaded into another: CheckpointError naming both."""
    model = tiny_model()
    path = save_checkpoint(tmp_path / "a.pt", build_payload(model))
    other = create_model("unet", **TINY_MODEL.get("unet", {}))
    with pytest.raises(CheckpointError) as info:
        load_weights_into(other, path)
    assert model.model_name in str(info.value) and other.model_name in str(info.value)
    with pytest.raises(CheckpointError) as info:
        load_model(path, expected_model=other.model_name)
    assert model.model_name in str(info.value) and other.model_name in str(info.value)
    wider = tiny_model(wider=True)
    with pytest.raises(CheckpointError) as info:
        load_weights_into(wider, path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_safetensors_export_round_trips(tmp_path: Path) -> None:
    """export_safetensors: identical tensors; the metadata alone rebuilds an identical model."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    model = tiny_model()
    with torch.no_grad():  # non-trivial values, including buffers (BN running stats)
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.1 + (t.abs() > 0).float())
    path = save_checkpoint(tmp_path / "a.pt", build_payload(model))
    out = export_safetensors(path, tmp_path / "w.safetensors")
    tensors = load_file(out)
    state = model.state_dict()
    assert set(tensors) == set(state)
    for k, v in state.items():
        assert torch.equal(tensors[k], v), k
    with safe_open(out, framework="pt") as fh:
        meta = fh.metadata()
    assert meta["model_name"] == model.model_name
    assert meta["package_version"] == __version__
    rebuilt = create_model(meta["model_name"], **json.loads(meta["model_config"]))
    rebuilt.load_state_dict(tensors, strict=True)
    model.eval()
    rebuilt.eval()
    x = torch.rand(2, model.in_channels, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def test_hostile_teacher_or_resume_checkpoint_is_refused_by_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``train --teacher EVIL`` and ``train --resume DIR`` whose last.pt is hostile: exit 2, one
    line naming the file, the marker never created, no training happens."""
    marker = tmp_path / "pwned"
    evil = _hostile_files(tmp_path, marker)["nested in a valid payload"]
    import yaml

    cfg = {
        "model": {"name": "medspikeformer", **TINY_MODEL["medspikeformer"]},
        "data": {
            "dataset": "synthetic",
            "size": 32,
            "augment": "none",
            "cache_dir": False,
            "split_spec": "60/20/20",
            "options": {"num_samples": 10},
        },
        "train": {"epochs": 1, "batch_size": 2, "progress": False},
    }
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = run_main(
        ["train", "--config", config, "--teacher", evil, "--out", tmp_path / "run1"], capsys
    )
    assert_user_error(res, str(evil))
    assert not (tmp_path / "run1" / "last.pt").exists()
    run_dir = tmp_path / "run2"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run_dir / "last.pt").write_bytes(evil.read_bytes())
    res = run_main(["train", "--resume", run_dir], capsys)
    assert_user_error(res, str(run_dir / "last.pt"))
    assert not marker.exists()
