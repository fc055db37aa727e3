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
