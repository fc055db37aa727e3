"""The background checkpoint writer (``engine/checkpoint.py``: ``CheckpointWriter``) and the
training loop's ``last.pt`` written through it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from medspikeformer import create_model, outputs
from medspikeformer.engine import checkpoint as ck
from medspikeformer.engine import train
from medspikeformer.engine.checkpoint import CheckpointWriter, build_payload, load_checkpoint
from medspikeformer.errors import CheckpointError

from .helpers import TINY_MODEL, quiet, tiny_config


def _model(**over: int) -> torch.nn.Module:
    opts = {k: v for k, v in TINY_MODEL.items() if k != "name"}
    return create_model("medspikeformer", **{**opts, **over})


def _payload(model: torch.nn.Module, epoch: int) -> dict:
    return build_payload(model, epoch=epoch, metrics={"val_miou": 0.5})


def test_the_file_holds_the_weights_of_the_submit_not_later_ones(tmp_path: Path) -> None:
    """The payload's tensors are copied when submitted: the loop may change them at once."""
    model = _model()
    writer = CheckpointWriter()
    want = {k: v.clone() for k, v in model.state_dict().items()}
    writer.submit(tmp_path / "last.pt", _payload(model, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    writer.wait()
    got = load_checkpoint(tmp_path / "last.pt")["state_dict"]
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_at_most_one_write_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    started: list[str] = []
    real = ck.atomic_write_bytes

    def slow(path: Path, data: bytes) -> None:
        started.append(Path(path).name)
        release.wait(timeout=30)
        real(path, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", slow)
    writer = CheckpointWriter()
    writer.submit(tmp_path / "a.pt", _payload(_model(), 1))
    second = threading.Thread(target=writer.submit, args=(tmp_path / "b.pt", _payload(_model(), 2)))
    second.start()
    second.join(timeout=1.0)
    assert second.is_alive() and started == ["a.pt"]  # b waits for a
    release.set()
    second.join(timeout=30)
    writer.wait()
    assert started == ["a.pt", "b.pt"] and not writer.busy
    assert load_checkpoint(tmp_path / "b.pt")["epoch"] == 2


def test_a_crash_in_the_writer_is_reported_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception mid-write (after the bytes, before the rename) is raised by the next wait()
    as the one-line checkpoint error; the file on disk is the previous complete checkpoint."""
    path = tmp_path / "last.pt"
    writer = CheckpointWriter()
    writer.submit(path, _payload(_model(), 1))
    writer.wait()
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "fsync", broken_fsync)
    writer.submit(path, _payload(_model(base_channels=8), 2))
    with pytest.raises(CheckpointError, match=r"last\.pt.*No space left") as info:
        writer.wait()
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left
    assert load_checkpoint(path)["epoch"] == 1
    writer.wait()  # reported once


def test_the_loop_reports_a_failed_background_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A last.pt write that fails in the writer thread stops the run with the checkpoint error
    (at the next submit or at the end), and last.pt stays the last complete one."""
    real = ck.save_checkpoint
    writes: list[str] = []

    def fail_second_last(path: Path, payload: dict) -> Path:
        if Path(path).name == "last.pt":
            writes.append(threading.current_thread().name)
            if len(writes) == 2:
                raise CheckpointError(f"{path}: cannot write the file (disk full)")
        return real(path, payload)

    monkeypatch.setattr(ck, "save_checkpoint", fail_second_last)
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "none"}, train={"epochs": 3})
    with pytest.raises(CheckpointError, match="disk full"):
        train(cfg, log=quiet)
    assert writes == ["checkpoint-writer"] * 2  # written from the background thread
    assert load_checkpoint(tmp_path / "r" / "last.pt")["epoch"] == 1
    assert not (tmp_path / "r" / ".lock").exists()
