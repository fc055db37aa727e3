"""Kill and resume (issue 6, part 1).

A tiny, deterministic CPU training run (``medspikeformer train``, joint teacher, paper
augmentation, 3 epochs of 6 steps) is started in a child process through ``hooked_cli.py`` — the
real command line with observation hooks — and killed with SIGKILL:

* at a random optimiser step inside an epoch (the parent follows the ``step N`` events and kills
  when the chosen step has been reached; the exact instant inside that step is up to the scheduler),
* while a checkpoint is being written: the child stops at a chosen phase of the atomic writer —
  temp file half written, fully written but not fsync'ed, fsync'ed but not renamed, renamed but the
  directory not yet fsync'ed — and is killed there.

Then: the checkpoint on disk is never corrupt (it loads with ``load_checkpoint`` and holds exactly
the weights of the last completed epoch of an uninterrupted reference run), and ``medspikeformer
train --resume`` finishes the run with final weights (student and joint teacher) bit-identical to
the reference run's, and the same per-epoch metrics.

The reference run and the kill points are chosen from a seed (``MSF_KILL_SEED``, default random);
the seed is part of every assertion message so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from medspikeformer.engine.checkpoint import load_checkpoint
from tiny_models import TINY_MSF

from .helpers import REPO, cli_env, run_cli

HOOKED_CLI = Path(__file__).with_name("hooked_cli.py")
EPOCHS = 3
STEPS_PER_EPOCH = 6  # 18 training images, batch 3
PHASES = ("half-written", "before-fsync", "before-rename", "after-rename")

TINY_RUN: dict[str, Any] = {
    "model": {"name": "medspikeformer", **TINY_MSF},
    "data": {
        "dataset": "synthetic",
        "size": 32,
        "split_spec": "60/20/20",
        "augment": "paper",
        "cache_dir": False,
        "num_workers": 0,
        "options": {"num_samples": 30},
    },
    "optim": {"lr": 3e-3},
    "teacher": {"mode": "joint"},
    "train": {
        "epochs": EPOCHS,
        "batch_size": 3,
        "deterministic": True,
        "progress": False,
        "seed": 7,
    },
}

SEED = int(os.environ.get("MSF_KILL_SEED", str(random.SystemRandom().randrange(1 << 30))))


def write_config(directory: Path, **train: Any) -> Path:
    """The tiny run's YAML config (``train`` entries override the loop settings)."""
    cfg = {**TINY_RUN, "train": {**TINY_RUN["train"], **train}}
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_hooked(args: list[str], events: Path, **hooks: str) -> subprocess.Popen[str]:
    """Start ``hooked_cli.py ARGS`` with the given ``MSF_HOOK_*`` variables."""
    env = cli_env(MSF_HOOK_EVENTS=str(events), **hooks)
    return subprocess.Popen(
        [sys.executable, str(HOOKED_CLI), *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_event(
    proc: subprocess.Popen[str], events: Path, wanted: str, timeout: float = 240
) -> None:
    """Poll the events file until a line equal to ``wanted`` appears (or the child exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists() and wanted in events.read_text().splitlines():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"child exited ({proc.returncode}) before {wanted!r}\n{out}\n{err}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"timed out waiting for {wanted!r}")


def sigkill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the child and check that it died of it (it had not finished on its own)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"child ended with {proc.returncode}, not SIGKILL"


def weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Student and joint-teacher weights of a last.pt (loaded the safe way)."""
    ckpt = load_checkpoint(path)
    return {"student": ckpt["state_dict"], "teacher": ckpt["resume"]["teacher_state_dict"]}


def assert_same_weights(a: Path, b: Path, context: str) -> None:
    wa, wb = weights(a), weights(b)
    for part in ("student", "teacher"):
        assert wa[part].keys() == wb[part].keys(), context
        for key, value in wa[part].items():
            other = wb[part][key]
            assert torch.equal(value, other), (
                f"{context}: {part} {key} differs "
                f"(max |diff| {float((value.double() - other.double()).abs().max()):.3g})"
            )


def history(path: Path) -> list[dict[str, float]]:
    """Per-epoch metrics stored in last.pt, without the wall-clock column."""
    rows = load_checkpoint(path)["resume"]["loop"]["history"]
    return [
        {k: "nan" if v != v else v for k, v in row.items() if k != "time_s"}  # nan != nan
        for row in rows
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted run (in this process), with a copy of last.pt after every epoch and the
    epoch of every checkpoint write (``writes[(name, k)]`` = epoch whose end wrote the k-th
    ``name``)."""
    from medspikeformer.engine import checkpoint as ckpt_mod
    from medspikeformer.engine.trainer import train

    base = tmp_path_factory.mktemp("reference")
    snaps = base / "snapshots"
    snaps.mkdir()
    config = write_config(base)
    writes: dict[tuple[str, int], int] = {}
    real_save = ckpt_mod.save_checkpoint

    def save(path: Any, payload: Any) -> Path:
        out = real_save(path, payload)
        name = Path(path).name
        count = 1 + sum(1 for n, _ in writes if n == name)
        writes[(name, count)] = int(payload["epoch"])
        if name == "last.pt":
            shutil.copyfile(out, snaps / f"last.epoch{payload['epoch']}.pt")
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ckpt_mod, "save_checkpoint", save)
        cfg = yaml.safe_load(config.read_text())
        cfg["out"] = str(base / "run")
        train(cfg, log=lambda _msg: None)
    assert [writes[("last.pt", e)] for e in range(1, EPOCHS + 1)] == [1, 2, 3], writes
    return {
        "config": config,
        "run": base / "run",
        "writes": writes,
        **{f"epoch{e}": snaps / f"last.epoch{e}.pt" for e in range(1, EPOCHS + 1)},
    }


def resume_and_compare(run_dir: Path, reference: dict[str, Any], context: str) -> None:
    """``train --resume`` (the real CLI entry, in this process: a fresh run, as after a crash);
    the final weights and metrics equal the uninterrupted run's."""
    from medspikeformer.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "removing stale lock of process N": expected here
        rc = main(["train", "--resume", str(run_dir), "--no-progress"])
    assert rc == 0, context
    final = run_dir / "last.pt"
    assert load_checkpoint(final)["epoch"] == EPOCHS, context
    assert_same_weights(final, reference["run"] / "last.pt", context)
    assert history(final) == history(reference["run"] / "last.pt"), context
    assert not (run_dir / ".lock").exists(), f"{context}: lock left behind after a clean exit"


def kill_mid_epoch(tmp_path: Path, reference: dict[str, Any], epoch: int, step: int) -> None:
    """Kill during step ``step`` of ``epoch`` (both 1-based), check the checkpoint, resume."""
    context = f"MSF_KILL_SEED={SEED}: SIGKILL at epoch {epoch} step {step}"
    run_dir = tmp_path / "run"
    events = tmp_path / "events.txt"
    proc = start_hooked(["train", "--config", reference["config"], "--out", run_dir], events)
    wait_for_event(proc, events, f"step {(epoch - 1) * STEPS_PER_EPOCH + step}")
    sigkill(proc)
    last = run_dir / "last.pt"
    done = load_checkpoint(last)["epoch"]  # must load: never corrupt
    # The kill may land a little after the chosen step: still inside the epoch, or in the
    # validation/checkpoint of its end; either way last.pt is a complete epoch of the reference.
    assert done in (epoch - 1, epoch), context
    assert_same_weights(last, reference[f"epoch{done}"], context)
    resume_and_compare(run_dir, reference, context)


def test_sigkill_inside_an_epoch_then_resume_is_exact(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    """SIGKILL at a random step inside epoch 2 or 3 → resume → identical final weights."""
    rng = random.Random(SEED)
    epoch = rng.randint(2, EPOCHS)
    step = rng.randint(1, STEPS_PER_EPOCH - 1)
    kill_mid_epoch(tmp_path, reference, epoch, step)


def kill_in_checkpoint_write(
    tmp_path: Path, reference: dict[str, Any], name: str, count: int, phase: str
) -> None:
    """Pause the ``count``-th write of checkpoint ``name`` at ``phase``, SIGKILL, check, resume."""
    context = f"SIGKILL while writing {name} #{count} at phase {phase!r}"
    epoch = reference["writes"][(name, count)]  # the epoch whose end writes it
    run_dir = tmp_path / "run"
    events = tmp_path / "events.txt"
    proc = start_hooked(
        ["train", "--config", reference["config"], "--out", run_dir],
        events,
        MSF_HOOK_PAUSE=f"{name}:{count}:{phase}",
    )
    wait_for_event(proc, events, "paused")
    sigkill(proc)
    temps = sorted(run_dir.glob(f".{name}.*.tmp"))
    if phase == "after-rename":
        assert not temps, context
    else:
        assert temps, f"{context}: expected the interrupted temp file to be left"
    for other in ("best.pt", "last.pt"):
        if (run_dir / other).exists():
            load_checkpoint(run_dir / other)  # never corrupt
    last = run_dir / "last.pt"
    # last.pt of epoch e is written after best.pt of epoch e; it holds epoch e only once renamed.
    done = epoch if (name == "last.pt" and phase == "after-rename") else epoch - 1
    if done == 0:
        # Killed while writing the very first last.pt: nothing to resume, and no partial file
        # poses as a checkpoint; the command says so on one line.
        assert not last.exists(), context
        res = run_cli(["train", "--resume", run_dir], cwd=REPO)
        assert res.returncode == 2 and "nothing to resume" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        return
    assert load_checkpoint(last)["epoch"] == done, context
    assert_same_weights(last, reference[f"epoch{done}"], context)
    resume_and_compare(run_dir, reference, context)


def test_sigkill_while_writing_a_checkpoint_then_resume_is_exact(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    """SIGKILL at a random phase of writing epoch 2's last.pt → previous intact, exact resume."""
    phase = random.Random(SEED).choice(PHASES)
    kill_in_checkpoint_write(tmp_path, reference, "last.pt", 2, phase)


@pytest.mark.slow
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("name", ["first last.pt", "last last.pt", "last best.pt"])
def test_sigkill_at_every_checkpoint_phase(
    tmp_path: Path, reference: dict[str, Any], name: str, phase: str
) -> None:
    """Every phase of the atomic writer, for the first and the final last.pt and for best.pt."""
    which, file = name.split()
    counts = sorted(k for (n, k) in reference["writes"] if n == file)
    assert counts, f"the reference run never wrote {file}"
    count = counts[0] if which == "first" else counts[-1]
    kill_in_checkpoint_write(tmp_path, reference, file, count, phase)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(4))
def test_sigkill_at_more_random_steps(
    tmp_path: Path, reference: dict[str, Any], trial: int
) -> None:
    """Four more random (epoch, step) kill points, including the first step of an epoch."""
    rng = random.Random(SEED * 31 + trial)
    kill_mid_epoch(tmp_path, reference, rng.randint(2, EPOCHS), rng.randint(1, STEPS_PER_EPOCH))
