"""The public training step (``TrainingStep``, ``run_steps``) and its seams (callbacks, extra
loss terms, skip-on-non-finite)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from medspikeformer.engine import Callback, TrainingStep, run_steps, train
from medspikeformer.errors import NumericalError

from .helpers import quiet, tiny_config

BUILTIN = ["bce", "dice", "stage_sup", "align_kl", "align_l2", "align"]
BUILTIN += ["teacher_seg", "teacher_stage", "total", "teacher_total"]


def _batch(n: int = 2, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(n, 3, size, size, generator=gen),
        "mask": (torch.rand(n, 1, size, size, generator=gen) > 0.5).float(),
    }


def test_run_steps_runs_the_real_step(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "joint"})
    step = TrainingStep.from_config(cfg)
    assert step.teacher_mode == "joint" and step.t_opt is not None
    before = [p.detach().clone() for p in step.student.parameters()]
    terms = step(_batch())
    assert list(terms) == BUILTIN
    assert all(t.dim() == 0 and math.isfinite(float(t.detach())) for t in terms.values())
    assert step.steps == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, step.student.parameters()))
    last = run_steps(cfg, [_batch(seed=1), _batch(seed=2)])
    assert list(last) == BUILTIN
    assert not (tmp_path / "r").exists()  # no run directory: the step alone


def test_step_skips_a_non_finite_batch(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "none"}, train={"nan_policy": "skip"})
    step = TrainingStep.from_config(cfg)
    bad = _batch()
    bad["image"][0, 0, 0, 0] = float("nan")
    weights = {k: v.clone() for k, v in step.student.state_dict().items()}
    step(bad)
    assert step.skipped == 1 and step.steps == 0
    for k, v in step.student.state_dict().items():  # buffers (BN statistics) put back too
        assert torch.equal(v, weights[k]), k
    stop = TrainingStep.from_config(tiny_config(tmp_path / "s", teacher={"mode": "none"}))
    with pytest.raises(NumericalError, match="non-finite loss or gradient"):
        stop(bad)


class _Probe(Callback):
    def __init__(self) -> None:
        self.started: list[Any] = []
        self.steps: list[int] = []
        self.epochs: list[tuple[int, dict]] = []

    def on_train_start(self, step: TrainingStep) -> None:
        self.started.append(step)
        # A new loss term from outside: the mean logit, weight 0 (logged, changes nothing).
        step.add_loss_term("mean_logit", lambda out: out.student.logits.float().mean(), 0.0)

    def on_step_end(self, index: int, terms: Any) -> None:
        assert "mean_logit" in terms
        self.steps.append(index)

    def on_epoch_end(self, epoch: int, row: Any) -> None:
        self.epochs.append((epoch, dict(row)))


def test_callbacks_and_extra_terms_in_the_loop(tmp_path: Path) -> None:
    probe = _Probe()
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "none"})
    result = train(cfg, log=quiet, callbacks=[probe])
    assert len(probe.started) == 1
    # 12 images 50/25/25 → 6 train images, batch 3 → 2 steps per epoch, 2 epochs.
    assert probe.steps == [1, 2, 3, 4]
    assert [e for e, _ in probe.epochs] == [1, 2] == list(range(1, result["epochs_run"] + 1))
    assert math.isfinite(probe.epochs[-1][1]["train_mean_logit"])
    with (tmp_path / "r" / "metrics.csv").open(newline="") as fh:
        header = next(csv.reader(fh))
    assert "train_mean_logit" in header and "train_teacher_total" not in header
    assert header.index("train_total") > header.index("train_teacher_stage")


def test_compile_trial_runs_what_training_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compile trial is a train-mode forward and backward at the run's batch shape (a
    compiler that fails only there is caught at wrap time, not at the first step) and leaves
    the weights, BN statistics and gradients as they were."""
    seen: list[tuple[int, bool, bool]] = []

    def picky_compile(module, *args, **kwargs):
        def run(x):
            seen.append((x.shape[0], module.training, torch.is_grad_enabled()))
            if module.training and torch.is_grad_enabled():
                raise RuntimeError("checkpoint not implemented for context_fn")
            return module(x)

        return run

    monkeypatch.setattr(torch, "compile", picky_compile)
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "none"}, train={"batch_size": 3})
    step = TrainingStep.from_config(cfg)
    with pytest.warns(UserWarning, match="torch.compile failed, training eagerly: checkpoint"):
        step.wrap(compile=True)
    assert seen == [(3, True, True)]
    assert isinstance(step.student_fwd, torch.nn.Module)  # eager fallback
    step(_batch(3))
    assert step.steps == 1

    monkeypatch.setattr(torch, "compile", lambda module, *a, **k: module)
    step = TrainingStep.from_config(cfg)
    state = {k: v.clone() for k, v in step.student.state_dict().items()}
    step.wrap(compile=True)
    for key, value in step.student.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(p.grad is None for p in step.student.parameters())
    assert step.student.training


def _deferred(cfg: dict[str, Any], every: int) -> TrainingStep:
    """The step as the trainer builds it: finite check read every ``every`` steps."""
    from medspikeformer.engine.config import config_from_dict
    from medspikeformer.engine.state import seed_everything

    config = config_from_dict(cfg)
    seed_everything(config.train.seed)
    step = TrainingStep(config, check_every=every)
    step.train()
    return step


class _HostReads:
    """Counts the reads of a device value on the host (``item``, ``tolist``, ``bool``,
    ``float``, ``int``): on a GPU each one is a device sync."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
            real = getattr(torch.Tensor, name)

            def counted(t: torch.Tensor, *a: Any, _real: Any = real, **k: Any) -> Any:
                self.count += 1
                return _real(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counted)


def test_deferred_check_reads_the_host_once_per_check_every_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = _deferred(tiny_config(tmp_path / "r", teacher={"mode": "joint"}), every=4)
    assert step.deferred
    batches = [_batch(seed=i) for i in range(8)]
    reads = _HostReads(monkeypatch)
    for i, batch in enumerate(batches, 1):
        step(batch)
        assert reads.count == i // 4, i  # none in between: the CPU may run ahead
    assert step.settle() == 0 and reads.count == 2  # nothing pending: no read
    assert step.steps == 8 and step.skipped == 0
    sync = TrainingStep.from_config(tiny_config(tmp_path / "s", teacher={"mode": "joint"}))
    assert not sync.deferred
    before = reads.count
    for batch in batches[:3]:
        sync(batch)
    assert reads.count - before == 3  # the per-step check reads every step


def test_deferred_skip_masks_the_update_on_the_device(tmp_path: Path) -> None:
    """nan_policy=skip with a deferred check ends where the per-step check ends: the bad step's
    update is skipped by the optimiser on the device flag, its BN statistics put back."""
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "joint"}, train={"nan_policy": "skip"})
    bad = _batch(seed=1)
    bad["image"][0, 0, 0, 0] = float("nan")
    batches = [_batch(seed=0), bad, _batch(seed=2)]
    sync = TrainingStep.from_config(cfg)
    deferred = _deferred(cfg, every=10)
    for batch in batches:
        sync(batch)
        deferred(batch)
    assert [bool(deferred.last_good)] == [True]
    assert deferred.skipped == 0  # not read yet
    assert deferred.settle() == 1
    assert (deferred.skipped, deferred.steps) == (sync.skipped, sync.steps) == (1, 2)
    for model in ("student", "teacher"):
        ref = getattr(sync, model).state_dict()
        for key, value in getattr(deferred, model).state_dict().items():
            assert torch.equal(value, ref[key]), (model, key)
    for opt in ("opt", "t_opt"):
        ref = getattr(sync, opt).state_dict()["state"]
        got = getattr(deferred, opt).state_dict()["state"]
        for index, state in got.items():
            for key, value in state.items():
                assert torch.equal(value, ref[index][key]), (opt, index, key)


def test_deferred_stop_raises_at_the_read_naming_the_first_bad_step(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "none"})
    bad = _batch(seed=1)
    bad["image"][:, :, :, :] = float("inf")
    step = _deferred(cfg, every=3)
    step(_batch(seed=0), fault_message=lambda what: f"step 1: {what}")
    step(bad, fault_message=lambda what: f"step 2: {what}")
    with pytest.raises(NumericalError, match=r"^step 2: non-finite loss or gradient \(total="):
        step(bad, fault_message=lambda what: f"step 3: {what}")
    assert step.settle() == 0  # read and cleared
