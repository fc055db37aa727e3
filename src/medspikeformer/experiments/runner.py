"""Run an experiment (comparison or ablation): train + evaluate + profile every row, then tabulate.

The orchestration only; the parts live beside it, one job each:

* :mod:`~medspikeformer.experiments.spec` — the request (:class:`ExperimentSpec`), the shared
  config and each row's resolved config;
* :mod:`~medspikeformer.experiments.adapters` — train / evaluate / profile one row through the
  engine;
* :mod:`~medspikeformer.experiments.folders` — the folder's layout and records, who is busy;
* :mod:`~medspikeformer.experiments.report` — results.md/csv, summary.json and the plots.

This module re-exports their public names, so ``from medspikeformer.experiments.runner import
...`` keeps working.

Resumability: a row/seed whose ``result.json`` exists is finished and never redone; one whose run
directory holds ``last.pt`` but no result is resumed through the engine's resume (exactly where it
stopped); anything else is trained from scratch. ``experiment.json`` pins the shared
configuration, and re-running into the same ``OUT`` with another one is refused (rows trained
under different budgets must not share a table). A row whose run directory another live process
holds (:class:`~medspikeformer.errors.RunBusyError`) is skipped, not fought over.

``result.json`` schema::

    {"row", "label", "model", "seed", "run_dir", "dataset", "split": "test", "n_test",
     "metrics": {"miou", "dsc", "acc", "spe", "sen", "dice_per_image", "iou_per_image"},
     "per_image_dice": {image id: dice},
     "profile": {"params_m", "gflops", "gflops_per_timestep", "timesteps", "firing_rate",
                 "energy_mj", "size"},
     "run": {"train_time_s", "epochs", "best_epoch", "teacher"},
     "config": resolved training config (dict)}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medspikeformer.errors import ConfigError, RunBusyError
from medspikeformer.experiments.adapters import (
    eval_payload,
    evaluate_row,
    profile_row,
    train_row,
    train_time_from_csv,
)
from medspikeformer.experiments.folders import (
    EXPERIMENT_NAME,
    RESULT_NAME,
    TRAINED_NAME,
    busy_elsewhere,
    check_experiment_file,
    read_record,
    write_json,
)
from medspikeformer.experiments.report import markdown_document, write_report
from medspikeformer.experiments.rows import Row
from medspikeformer.experiments.spec import (
    ExperimentResult,
    ExperimentSpec,
    base_config,
    fingerprint,
    pin_split,
    resolve_row_config,
)
from medspikeformer.experiments.tables import summarise
from medspikeformer.runtime import check_train_platform

__all__ = [
    "EXPERIMENT_NAME",
    "RESULT_NAME",
    "TRAINED_NAME",
    "ExperimentResult",
    "ExperimentSpec",
    "base_config",
    "busy_elsewhere",
    "evaluate_row",
    "markdown_document",
    "pin_split",
    "profile_row",
    "read_record",
    "resolve_row_config",
    "run_experiment",
    "run_row",
    "train_row",
]


def run_row(
    spec: ExperimentSpec, row: Row, seed_index: int, run_dir: Path, config
) -> dict[str, Any]:
    """Train/resume, evaluate and profile one row and seed; writes and returns its result."""
    from medspikeformer.engine.config import config_to_dict

    train_info = train_row(config, run_dir)
    evaluated = evaluate_row(config, run_dir, spec.eval_split, spec.checkpoint)
    metrics, per_image = eval_payload(evaluated["result"])
    profile = profile_row(evaluated["model"], evaluated["dataset"], config.data.size)
    train_time = train_time_from_csv(run_dir)
    if train_time is None:
        train_time = train_info.get("wall_time_s")
    result = {
        "row": row.key,
        "label": row.label,
        "model": row.model,
        "seed": int(config.train.seed),
        "seed_index": int(seed_index),
        "run_dir": str(run_dir),
        "dataset": spec.dataset,
        "split": spec.eval_split,
        "n_test": len(per_image),
        "metrics": metrics,
        "per_image_dice": per_image,
        "profile": profile,
        "run": {
            "train_time_s": None if train_time is None else float(train_time),
            "epochs": config.train.epochs,
            "epochs_run": train_info.get("epochs_run"),
            "checkpoint": evaluated["path"].name,
            "checkpoint_epoch": evaluated["ckpt"].get("epoch"),
            "best_epoch": train_info.get("best_epoch"),
            "teacher": train_info.get("teacher") or config.teacher.mode,
        },
        "config": config_to_dict(config),
    }
    write_json(run_dir / RESULT_NAME, result)
    return result


def _progress(console: Any, text: str) -> None:
    if console is not None:
        console(text)


def run_experiment(
    spec: ExperimentSpec,
    *,
    log: Callable[[str], None] | None = print,
    row_runner: Callable[..., dict[str, Any]] | None = None,
) -> ExperimentResult:
    """Run every (row, seed) not finished yet, then write the tables, summary and plots.

    ``row_runner`` (default :func:`run_row`) is the per-row work, replaceable in tests.
    """
    from medspikeformer.engine.config import validate_config

    check_train_platform("experiment")
    if spec.seeds < 1:
        raise ConfigError(f"--seeds {spec.seeds}: at least one seed is needed")
    row_runner = row_runner or run_row
    out = Path(spec.out)
    from medspikeformer.engine.run_dir import ensure_writable_dir

    ensure_writable_dir(out)  # a file there, or a folder it cannot write: one line, before any work
    if spec.checkpoint not in ("last", "best"):
        raise ConfigError(f"--checkpoint {spec.checkpoint!r}: use last or best")
    rows = spec.row_list()
    shared = base_config(spec)
    validate_config(shared, check_model=False)
    check_experiment_file(spec, fingerprint(shared))
    shared = pin_split(shared, out)

    results: dict[str, list[dict[str, Any]]] = {r.key: [] for r in rows}
    trained, reused, busy = [], [], []
    aliased: dict[str, str] = {}
    seen: dict[str, str] = {}  # fingerprint (seed 0) → first row key
    for row in rows:
        cfg0 = resolve_row_config(spec, row, 0, out / "rows" / row.key / "seed0", shared)
        fp = fingerprint(cfg0)
        if fp in seen:
            aliased[row.key] = seen[fp]
        else:
            seen[fp] = row.key
    total = len(rows) * spec.seeds
    step = 0
    for row in rows:
        source = aliased.get(row.key, row.key)
        for k in range(spec.seeds):
            step += 1
            run_dir = out / "rows" / source / f"seed{k}"
            config = resolve_row_config(
                spec, row if source == row.key else _row(rows, source), k, run_dir, shared
            )
            result_path = run_dir / RESULT_NAME
            tag = f"{row.key}/seed{k}"
            result = read_record(result_path, log)
            if result is not None:
                reused.append(tag)
                _progress(log, f"[{step}/{total}] {tag}: finished earlier, reusing {result_path}")
            else:
                if source != row.key:
                    # An alias shares its source's run; the source runs first in row order.
                    raise RuntimeError(f"row {row.key} aliases {source}, which has no result yet")
                pid = busy_elsewhere(run_dir)
                if pid is not None:
                    busy.append(tag)
                    _progress(
                        log, f"[{step}/{total}] {tag}: being trained by process {pid}; skipped"
                    )
                    continue
                validate_config(config)
                if (run_dir / TRAINED_NAME).is_file():
                    what = "training finished earlier; evaluating"
                elif (run_dir / "last.pt").is_file():
                    what = "resuming"
                else:
                    what = "training"
                _progress(
                    log,
                    f"[{step}/{total}] {tag}: {what} {row.model} ({config.train.epochs} epochs, "
                    f"size {config.data.size}) in {run_dir}",
                )
                try:
                    result = row_runner(spec, row, k, run_dir, config)
                except RunBusyError as exc:
                    busy.append(tag)
                    _progress(log, f"[{step}/{total}] {tag}: {exc}; skipped")
                    continue
                trained.append(tag)
                m = result["metrics"]
                _progress(log, f"    {tag}: mIoU {m['miou']:.4f}  DSC {m['dsc']:.4f}")
            if source != row.key:
                result = {**result, "row": row.key, "label": row.label}
            results[row.key].append(result)

    notes = {key: f"same run as {_row(rows, src).label}" for key, src in aliased.items()}
    summaries = summarise(
        rows, results, reference=spec.reference, dataset=spec.dataset, notes=notes
    )
    md_path, csv_path, json_path, plots = write_report(spec, rows, summaries, results, aliased)
    _progress(log, f"wrote {md_path}, {csv_path}, {json_path}, " + ", ".join(map(str, plots)))
    if busy:
        _progress(log, f"not in these tables yet (running elsewhere): {', '.join(busy)}")
    return ExperimentResult(
        summaries, md_path, csv_path, json_path, plots, trained, reused, aliased, busy
    )


def _row(rows: Sequence[Row], key: str) -> Row:
    return next(r for r in rows if r.key == key)
