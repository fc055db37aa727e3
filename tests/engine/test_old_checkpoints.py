"""Checkpoints written before issue 13 (payload format 1) still load.

``data/state_dict_keys_v1.json`` was written by the code of commit 00c447a (before the model
contract, the layers package and the trainer split): for every registered model at a tiny config,
its constructor config and the name, shape and dtype of every state_dict entry. The tests build
checkpoints from it by hand, in that payload layout (not through today's ``build_payload``), and
load them with today's code; and they pin today's state_dict layout to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from medspikeformer import create_model, list_models
from medspikeformer.engine.checkpoint import load_model
from medspikeformer.inference.context import load_context, load_teacher

GOLDEN = json.loads((Path(__file__).parent / "data" / "state_dict_keys_v1.json").read_text())


def _old_state(name: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape, dtype in GOLDEN[name]["state"]:
        dt = getattr(torch, dtype)
        if dt.is_floating_point:
            state[key] = torch.rand(shape, generator=gen, dtype=dt) + 0.5  # positive variances
        else:
            state[key] = torch.zeros(shape, dtype=dt)
    return state


def _old_payload(name: str, **extra: Any) -> dict[str, Any]:
    """The format-1 payload as the trainer of 00c447a wrote it (best.pt; ``resume`` for last.pt)."""
    return {
        "format": "medspikeformer-checkpoint",
        "format_version": 1,
        "package_version": "0.1.0",
        "model_name": name,
        "model_config": GOLDEN[name]["config"],
        "state_dict": _old_state(name),
        "epoch": 3,
        "metrics": {"val_miou": 0.5},
        "train_config": {
            "model": {"name": name, **GOLDEN[name]["config"]},
            "data": {"dataset": "synthetic", "size": 32, "in_channels": None, "options": {}},
            "train": {"seed": 41, "threshold": 0.5},
        },
        **extra,
    }


def test_golden_covers_every_model() -> None:
    assert sorted(GOLDEN) == list_models()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_state_dict_layout_unchanged(name: str) -> None:
    """Same keys, in the same order, with the same shapes and dtypes as before."""
    model = create_model(name, **GOLDEN[name]["config"])
    now = [
        [k, list(v.shape), str(v.dtype).replace("torch.", "")]
        for k, v in model.state_dict().items()
    ]
    assert now == GOLDEN[name]["state"]
    # options added since the golden file: the old network (the paper's) for every model but
    # medspikeformer itself, whose default neuron is now the integer one (and its ANN twin, where
    # the option has no effect)
    neuron = "ilif" if name in ("medspikeformer", "ann") else "lif"
    added = {"neuron": neuron, "levels": 4, "head": "spike"}
    if name != "unet":
        assert {k: model.config[k] for k in added} == added
    assert {k: v for k, v in model.config.items() if k not in added} == GOLDEN[name]["config"]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_old_checkpoint_loads(tmp_path: Path, name: str) -> None:
    path = tmp_path / "best.pt"
    torch.save(_old_payload(name), path)
    model, ckpt = load_model(path, expected_model=name)
    assert ckpt["epoch"] == 3
    if name != "unet":  # written before the neuron option: the paper's LIF, whatever the default
        assert model.config["neuron"] == "lif" and ckpt["model_config"]["neuron"] == "lif"
    for key, value in _old_state(name).items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.rand(1, model.in_channels, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (1, 1, 32, 32)


def test_an_old_run_resumes_as_the_network_it_trained(tmp_path: Path) -> None:
    """A run folder written before the neuron option (config.yaml and last.pt without it) resumes
    with the paper's LIF it trained with, not today's default, and without a config complaint."""
    from medspikeformer.engine import train
    from medspikeformer.engine.checkpoint import load_checkpoint

    from .helpers import TINY_MODEL, quiet, tiny_config

    run = tmp_path / "run"
    cfg = tiny_config(run, model={**TINY_MODEL, "neuron": "lif"}, train={"epochs": 1})
    train(cfg, log=quiet)
    # make it old: no neuron anywhere
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(run / name, weights_only=True)
        del ckpt["model_config"]["neuron"]
        del ckpt["train_config"]["model"]["neuron"]
        torch.save(ckpt, run / name)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("  neuron: lif\n", ""))
    assert "neuron" not in (run / "config.yaml").read_text()
    cfg["model"].pop("neuron")
    cfg["train"]["epochs"] = 2
    train(cfg, resume=run, log=quiet)
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["model_config"]["neuron"] == "lif"


def test_old_last_checkpoint_gives_its_teacher(tmp_path: Path) -> None:
    """An old run folder (best.pt + last.pt with ``resume.teacher_state_dict``): the inference
    context reads its saved config as a typed TrainConfig and finds the ANN twin's weights."""
    resume = {"teacher_mode": "joint", "teacher_model_name": "ann"}
    resume["teacher_state_dict"] = _old_state("ann")
    torch.save(_old_payload("medspikeformer"), tmp_path / "best.pt")
    torch.save(_old_payload("medspikeformer", resume=resume), tmp_path / "last.pt")
    ctx = load_context(tmp_path / "best.pt")
    assert ctx.has_config and ctx.config.data.dataset == "synthetic"
    assert ctx.train_size == (32, 32) and ctx.config.train.threshold == 0.5
    teacher, source = load_teacher(ctx)
    assert teacher is not None and source.endswith("last.pt")
    assert teacher.model_name == "ann"
