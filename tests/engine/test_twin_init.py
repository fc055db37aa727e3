"""Twin initialisation through the engine: an ANN twin's run starts the spiking student (and a
joint teacher), the checkpoints and summary.json record it, and a resumed run keeps the record."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from medspikeformer.engine import train
from medspikeformer.engine.checkpoint import load_checkpoint

from .helpers import TINY_MODEL, quiet, tiny_config


def test_a_twin_checkpoint_starts_the_student_and_the_record_survives_resume(
    tmp_path: Path,
) -> None:
    twin_model = {**TINY_MODEL, "name": "ann", "neuron": "ilif"}
    train(tiny_config(tmp_path / "twin", model=twin_model, train={"epochs": 1}), log=quiet)
    twin_ckpt = tmp_path / "twin" / "last.pt"
    twin_state = load_checkpoint(twin_ckpt)["state_dict"]

    student_model = {**TINY_MODEL, "neuron": "ilif"}
    cfg = tiny_config(
        tmp_path / "student",
        model=student_model,
        optim={"lr": 1e-9},
        teacher={"mode": "joint"},
        train={"epochs": 1, "init_from": str(twin_ckpt)},
    )
    lines: list[str] = []
    train(cfg, log=lines.append)
    assert any("initialised from the ANN twin" in line for line in lines)
    ckpt = load_checkpoint(tmp_path / "student" / "last.pt")
    record = ckpt["init"]
    assert record["kind"] == "twin" and record["path"] == str(twin_ckpt)
    assert len(record["sha256"]) == 64 and record["copied"] > 10
    assert all(k.startswith("attn.") for k in record["kept"])
    # at a vanishing learning rate the student still holds the twin's convolution weights
    conv = [k for k in twin_state if k.endswith("conv.weight") and not k.startswith("attn.")]
    assert conv and all(
        torch.allclose(ckpt["state_dict"][k], twin_state[k], atol=1e-6) for k in conv
    )
    # the joint teacher started as the whole twin
    teacher = ckpt["resume"]["teacher_state_dict"]
    assert torch.allclose(teacher["stem.conv.weight"], twin_state["stem.conv.weight"], atol=1e-6)

    cfg["train"]["epochs"] = 2  # resume: last.pt is read, init_from never again
    train(cfg, resume=tmp_path / "student", log=quiet)
    summary = json.loads((tmp_path / "student" / "summary.json").read_text())
    assert summary["epochs_run"] == 2 and summary["init"]["kind"] == "twin"
    assert load_checkpoint(tmp_path / "student" / "best.pt")["init"]["sha256"] == record["sha256"]


def test_init_from_twin_trains_the_twin_first_then_reuses_it(tmp_path: Path) -> None:
    """``train.init_from: twin``: the ANN twin is trained into RUN/twin/ (no teacher, the
    student's head gain), the student starts from its last.pt; a finished twin is reused."""
    student = {**TINY_MODEL, "neuron": "ilif", "head_gain": 2.0}
    cfg = tiny_config(tmp_path / "run", model=student, train={"epochs": 1, "init_from": "twin"})
    lines: list[str] = []
    train(cfg, log=lines.append)
    twin_dir = tmp_path / "run" / "twin"
    twin = load_checkpoint(twin_dir / "last.pt")
    assert twin["model_name"] == "ann" and twin["model_config"]["head_gain"] == 2.0
    assert twin["train_config"]["teacher"]["mode"] == "none"
    assert (twin_dir / "summary.json").is_file()
    assert any(line.startswith("twin: epoch 1/1") for line in lines)
    record = load_checkpoint(tmp_path / "run" / "last.pt")["init"]
    assert record["kind"] == "twin" and record["path"] == str(twin_dir / "last.pt")

    # a second run whose folder already holds a finished twin reuses it, weights unchanged
    again = tmp_path / "again"
    (again / "twin").mkdir(parents=True)
    for f in twin_dir.iterdir():
        (again / "twin" / f.name).write_bytes(f.read_bytes())
    cfg["out"] = str(again)
    lines.clear()
    train(cfg, log=lines.append)
    assert any("reusing the finished twin" in line for line in lines)
    assert not any(line.startswith("twin: epoch") for line in lines)
    assert load_checkpoint(again / "last.pt")["init"]["sha256"] == record["sha256"]


def test_init_from_twin_without_a_twin_starts_from_scratch(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path / "run", model={"name": "unet"}, teacher={"mode": "none"},
        train={"epochs": 1, "init_from": "twin"},
    )  # fmt: skip
    lines: list[str] = []
    train(cfg, log=lines.append)
    assert any("has no ANN twin; it starts from scratch" in line for line in lines)
    assert not (tmp_path / "run" / "twin").exists()
    assert load_checkpoint(tmp_path / "run" / "last.pt").get("init") is None
