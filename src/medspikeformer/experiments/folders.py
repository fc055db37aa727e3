"""The experiment folder's bookkeeping: record names, reading a finished step's record (a damaged
one is set aside), the ``experiment.json`` check, and which rows another process is training.

Layout of an experiment folder ``OUT``::

    OUT/
      experiment.json          what was asked: kind, dataset, recipe, rows, seeds, the shared config
      split.json               the experiment's pinned split (every row and seed)
      rows/<row>/seed<k>/      the engine's run directory of that row and seed (config.yaml,
                               split.json, metrics.csv, best.pt, last.pt, ...)
      rows/<row>/seed<k>/trained.json  written when training is over (the engine's result)
      rows/<row>/seed<k>/result.json   written last: test metrics, per-image Dice, profile, time
      results.md  results.csv  summary.json
      metric_bars.png  accuracy_vs_energy.png  dsc_over_time.png
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medspikeformer.errors import ConfigError
from medspikeformer.experiments.spec import ExperimentSpec
from medspikeformer.outputs import OutputError, atomic_write_bytes

__all__ = [
    "EXPERIMENT_NAME",
    "RESULT_NAME",
    "TRAINED_NAME",
    "busy_elsewhere",
    "check_experiment_file",
    "read_record",
    "write_json",
]

RESULT_NAME = "result.json"
TRAINED_NAME = "trained.json"
EXPERIMENT_NAME = "experiment.json"


def read_record(path: Path, log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """A finished step's record (``trained.json``, ``result.json``), or ``None`` when the step
    must run: no file, or a damaged one — kept beside as ``NAME.damaged`` (never overwritten,
    never deleted), with one warning line, and the step is done again."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        if isinstance(data, dict):
            return data
        problem = f"a JSON {type(data).__name__}, not an object"
    aside = _free_name(path.with_name(path.name + ".damaged"))
    path.rename(aside)
    message = (
        f"warning: {path}: damaged record ({problem}); kept as {aside.name}, redoing that step"
    )
    (log or _warn)(message)
    return None


def _free_name(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``… whichever does not exist yet."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _warn(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


class ExperimentWriteError(OutputError):
    """An experiment's record (``result.json``, ``trained.json``, ``experiment.json``) cannot be
    written: the error names that file."""


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(
        path,
        (json.dumps(data, indent=2, sort_keys=False) + "\n").encode(),
        error=ExperimentWriteError,
    )


def check_experiment_file(spec: ExperimentSpec, shared: str) -> None:
    path = Path(spec.out) / EXPERIMENT_NAME
    record = {
        "kind": spec.kind,
        "dataset": spec.dataset,
        "data_root": spec.data_root,
        "recipe": spec.recipe,
        "config": spec.config,
        "sets": list(spec.sets),
        "eval_split": spec.eval_split,
        "checkpoint": spec.checkpoint,
        "shared_config": json.loads(shared),
    }
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: unreadable experiment record ({exc})") from None
        if old.get("kind") != spec.kind or old.get("shared_config") != record["shared_config"]:
            raise ConfigError(
                f"{path}: this folder holds a {old.get('kind')} experiment with another shared "
                "configuration (recipe, dataset or --set); its rows would not share one budget — "
                "use another --out"
            )
        for key in ("eval_split", "checkpoint"):
            if old.get(key, record[key]) != record[key]:
                raise ConfigError(
                    f"{path}: this experiment scored {key}={old.get(key)!r}, not "
                    f"{record[key]!r}; use another --out"
                )
    write_json(path, record)


def busy_elsewhere(run_dir: Path) -> int | None:
    """PID of another live process on this host holding ``run_dir``'s lock, else ``None``.

    Lets several ``experiment`` processes share one ``OUT`` (e.g. one per core): a row that
    another process is training is skipped, not fought over; a later invocation tabulates it.
    """
    import os
    import socket

    from medspikeformer.engine.run_dir import LOCK_NAME, pid_alive

    path = run_dir / LOCK_NAME
    try:
        owner = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict):
        return None
    pid, host = int(owner.get("pid", -1)), owner.get("host")
    if pid == os.getpid() or host not in (None, socket.gethostname()):
        return None
    return pid if pid_alive(pid) else None
