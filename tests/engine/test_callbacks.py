"""The loop's hooks (``engine/callbacks.py``), its built-in bookkeeping as callbacks
(``engine/builtin_callbacks.py``) and the one list of built-in loss terms (``step.LOSS_TERMS``)."""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from medspikeformer.engine import Callback, TrainingStep, default_callbacks, train
from medspikeformer.engine import step as step_mod
from medspikeformer.engine.builtin_callbacks import (
    Checkpoints,
    EarlyStopping,
    MetricsCSV,
    Summary,
    TimeLimit,
    TrainingCurves,
)
from medspikeformer.engine.checkpoint import load_checkpoint

from .helpers import quiet, tiny_config

SRC = Path(__file__).resolve().parents[2] / "src" / "medspikeformer"


class _Recorder(Callback):
    """Every hook, in the order the loop calls it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_train_start(self, step: Any) -> None:
        self.calls.append(("on_train_start",))

    def on_fit_start(self, loop: Any) -> None:
        self.calls.append(("on_fit_start", loop.state.epoch, loop.is_main))

    def on_step_end(self, index: int, terms: Mapping[str, torch.Tensor]) -> None:
        self.calls.append(("on_step_end", index))

    def on_validation_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        assert all(k.startswith("val_") for k in metrics)
        self.calls.append(("on_validation_end", epoch))

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        self.calls.append(("on_epoch_end", epoch, row["epoch"]))

    def on_fit_end(self, summary: Mapping[str, Any]) -> None:
        self.calls.append(("on_fit_end", summary["epochs_run"]))

    def on_train_end(self, summary: Mapping[str, Any]) -> None:
        self.calls.append(("on_train_end", summary["epochs_run"]))


def test_a_user_callback_sees_every_hook_in_order(tmp_path: Path) -> None:
    rec = _Recorder()
    train(tiny_config(tmp_path / "r", teacher={"mode": "none"}), log=quiet, callbacks=[rec])
    # 6 train images, batch 3: 2 steps per epoch, 2 epochs.
    per_epoch = [
        lambda e, s: [("on_step_end", s + 1), ("on_step_end", s + 2)],
        lambda e, s: [("on_validation_end", e), ("on_epoch_end", e, e)],
    ]
    expected: list[tuple[Any, ...]] = [("on_train_start",), ("on_fit_start", 0, True)]
    for epoch in (1, 2):
        for part in per_epoch:
            expected += part(epoch, 2 * (epoch - 1))
    expected += [("on_fit_end", 2), ("on_train_end", 2)]
    assert rec.calls == expected


def test_the_builtin_callbacks_are_listed_in_order() -> None:
    kinds = [type(cb) for cb in default_callbacks()]
    assert kinds == [MetricsCSV, Checkpoints, EarlyStopping, TimeLimit, Summary, TrainingCurves]
    assert default_callbacks()[0] is not default_callbacks()[0]  # fresh instances per run


class _StopAfterFirst(Callback):
    def on_fit_start(self, loop: Any) -> None:
        self.loop = loop

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        self.loop.request_stop("early", "stopping: a user rule")


def test_builtin_callbacks_can_be_replaced(tmp_path: Path) -> None:
    """Without MetricsCSV no metrics.csv (the checkpoints still come); another stopping rule
    ends the run and the summary says so."""
    lines: list[str] = []
    builtins = [cb for cb in default_callbacks() if not isinstance(cb, MetricsCSV)]
    result = train(
        tiny_config(tmp_path / "r", teacher={"mode": "none"}),
        log=lines.append,
        builtin_callbacks=[*builtins, _StopAfterFirst()],
    )
    run = tmp_path / "r"
    assert not (run / "metrics.csv").exists() and not (run / "training_curves.png").exists()
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
    assert result["epochs_run"] == 1 and result["stopped_early"]
    assert lines[-1] == "stopping: a user rule"
    # No built-ins at all: the loop trains and writes only what set-up writes.
    train(tiny_config(tmp_path / "bare", teacher={"mode": "none"}), log=quiet, builtin_callbacks=[])
    assert not {"metrics.csv", "last.pt", "best.pt", "summary.json"} & {
        p.name for p in (tmp_path / "bare").iterdir()
    }


class _EpochCounter(Callback):
    """A callback with state across --resume."""

    def __init__(self) -> None:
        self.seen = 0
        self.loaded: dict[str, Any] | None = None

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        self.seen += 1

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.loaded = dict(state)
        self.seen = int(state["seen"])


def test_callback_state_survives_resume_and_plain_runs_keep_their_keys(tmp_path: Path) -> None:
    run = tmp_path / "r"
    cfg = tiny_config(run, teacher={"mode": "none"}, train={"epochs": 1})
    first = _EpochCounter()
    train(cfg, log=quiet, callbacks=[first])
    assert load_checkpoint(run / "last.pt")["resume"]["callbacks"] == {"_EpochCounter": {"seen": 1}}
    again = _EpochCounter()
    train({**cfg, "train": {**cfg["train"], "epochs": 2}}, resume=run, log=quiet, callbacks=[again])
    assert again.loaded == {"seen": 1} and again.seen == 2
    plain = tmp_path / "plain"
    train(tiny_config(plain, teacher={"mode": "none"}, train={"epochs": 1}), log=quiet)
    assert "callbacks" not in load_checkpoint(plain / "last.pt")["resume"]


def test_callbacks_module_imports_nothing_from_the_loop() -> None:
    tree = ast.parse((SRC / "engine" / "callbacks.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not {m for m in imported if m.startswith("medspikeformer")}, imported


def test_a_builtin_loss_term_is_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One more entry of LOSS_TERMS is computed, logged by name and summed with its weight."""
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "none"})
    batch = {
        "image": torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
        "mask": torch.zeros(2, 1, 32, 32),
    }
    base = TrainingStep.from_config(cfg).loss_step(batch)
    extra = step_mod.LossTerm("const", lambda step, out: torch.tensor(2.0), weight=lambda c: 0.25)
    monkeypatch.setattr(step_mod, "LOSS_TERMS", (*step_mod.LOSS_TERMS, extra))
    terms = TrainingStep.from_config(cfg).loss_step(batch)
    assert float(terms["const"]) == 2.0
    assert math.isclose(
        float(terms["total"].detach()), float(base["total"].detach()) + 0.5, rel_tol=1e-6
    )
    inactive = dataclasses.replace(extra, name="off", active=lambda step: False)
    monkeypatch.setattr(step_mod, "LOSS_TERMS", (*step_mod.LOSS_TERMS, inactive))
    step = TrainingStep.from_config(cfg)
    assert "off" in step.inactive_terms() and float(step.loss_step(batch)["off"]) == 0.0
