"""``experiment cv``: train the N folds of one config and report per-fold and mean ± std.

Layout of a cross-validation folder ``OUT``::

    OUT/
      experiment.json          what was asked (kind cv, dataset, recipe, --set, the shared config)
      split.json               the pinned parts: the folds share one test part and one pool
      folds/fold<k>/           the engine's run directory of fold k (data.folds = N, data.fold = k)
      folds/fold<k>/result.json   written last: the fold's metrics on the scored split
      cv.md  cv.json           per-fold rows and mean ± sample std over the folds

Fold ``k`` trains on the other folds' cases and selects checkpoints on its own held-out cases
(:mod:`medspikeformer.data.selection`); by default its ``last.pt`` is scored on that held-out
part (``--split val``, the cross-validation estimate), or on the untouched test part
(``--split test``). Re-running the command continues like the other experiments: a fold with
``result.json`` is reused, one with ``last.pt`` resumes, the rest train.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medspikeformer.errors import ConfigError
from medspikeformer.experiments.stats import mean_std
from medspikeformer.outputs import atomic_write_text

__all__ = ["CV_METRICS", "CVResult", "CVSpec", "run_cv"]

#: Metrics of the table, in order (``hd95`` only where the evaluation reports it).
CV_METRICS = ("dsc", "miou", "hd95")
METRIC_LABELS = {"dsc": "DSC", "miou": "mIoU", "hd95": "HD95"}


@dataclass
class CVSpec:
    """What to cross-validate: one config (dataset config < recipe < ``--set``), ``folds`` folds.

    ``eval_split``: ``val`` (each fold's held-out cases) or ``test``; ``checkpoint``: ``last`` or
    ``best`` (the best val mIoU on the fold's own held-out cases).
    """

    dataset: str
    out: Path
    folds: int = 5
    data_root: str | None = None
    recipe: str | None = None
    config: str | None = None
    sets: Sequence[str] = ()
    eval_split: str = "val"
    device: str = "auto"
    checkpoint: str = "last"

    def experiment_spec(self) -> Any:
        """The runner's spec of the same config (for the shared-config helpers)."""
        from medspikeformer.experiments.runner import ExperimentSpec

        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del shared["folds"]
        return ExperimentSpec(
            kind="cv", **{**shared, "out": Path(self.out), "sets": tuple(self.sets)}
        )


@dataclass
class CVResult:
    """Per-fold results, the aggregate and the files written."""

    folds: list[dict[str, Any]]
    summary: dict[str, Any]
    markdown: Path
    json: Path
    trained: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)


def fold_config(shared: Any, folds: int, fold: int, run_dir: Path) -> Any:
    """The shared config with ``data.folds``/``data.fold`` set and ``out`` at ``run_dir``."""
    config = copy.deepcopy(shared)
    config.data.folds, config.data.fold = folds, fold
    config.out = str(run_dir)
    return config


def run_fold(spec: CVSpec, fold: int, run_dir: Path, config: Any) -> dict[str, Any]:
    """Train (or resume) fold ``fold`` and score it; writes and returns its ``result.json``."""
    from medspikeformer.experiments.adapters import eval_payload, evaluate_row, train_row
    from medspikeformer.experiments.folders import RESULT_NAME, write_json

    train_info = train_row(config, run_dir)
    evaluated = evaluate_row(config, run_dir, spec.eval_split, spec.checkpoint)
    metrics, per_image = eval_payload(evaluated["result"])
    hd95 = evaluated["result"].metrics.get("hd95")
    metrics["hd95"] = None if hd95 is None else float(hd95)
    result = {
        "fold": fold,
        "folds": spec.folds,
        "run_dir": str(run_dir),
        "split": spec.eval_split,
        "n_images": len(per_image),
        "metrics": metrics,
        "checkpoint": evaluated["path"].name,
        "best_epoch": train_info.get("best_epoch"),
        "selection": evaluated["dataset"].split_info.get("validation", {}).get("protocol"),
    }
    write_json(run_dir / RESULT_NAME, result)
    return result


def aggregate(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """``{metric: {"mean", "std"}}`` over the folds (sample std; metrics no fold reports are
    left out)."""
    out: dict[str, dict[str, float | None]] = {}
    for key in CV_METRICS:
        values = [r["metrics"].get(key) for r in results]
        if not values or any(v is None for v in values):
            continue
        mean, std = mean_std(values)
        out[key] = {"mean": mean, "std": std}
    return out


def to_markdown(spec: CVSpec, results: Sequence[dict[str, Any]], agg: dict[str, Any]) -> str:
    """The per-fold table with a mean ± std row, and the facts needed to read it."""
    keys = [k for k in CV_METRICS if k in agg]
    head = ["fold", "images", *(METRIC_LABELS[k] for k in keys)]
    lines = [
        f"# {spec.folds}-fold cross-validation on {spec.dataset}",
        "",
        f"Recipe `{spec.recipe or 'none'}`; each fold's `{spec.checkpoint}.pt` scored on "
        + (
            "its own held-out cases (the fold's validation part)."
            if spec.eval_split == "val"
            else f"the `{spec.eval_split}` split."
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for r in results:
        cells = [str(r["fold"]), str(r["n_images"])]
        cells += [f"{r['metrics'][k]:.4f}" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["mean ± std", ""]
    for k in keys:
        std = agg[k]["std"]
        cells.append(f"{agg[k]['mean']:.4f}" + ("" if std is None else f" ± {std:.4f}"))
    lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "std: sample standard deviation over the folds.", ""]
    return "\n".join(lines)


def run_cv(
    spec: CVSpec,
    *,
    log: Callable[[str], None] | None = print,
    fold_runner: Callable[..., dict[str, Any]] | None = None,
) -> CVResult:
    """Train and score every fold not finished yet, then write ``cv.md`` and ``cv.json``.

    ``fold_runner`` (default :func:`run_fold`) is the per-fold work, replaceable in tests.
    """
    from medspikeformer.engine.config import validate_config
    from medspikeformer.engine.run_dir import ensure_writable_dir
    from medspikeformer.experiments.folders import (
        RESULT_NAME,
        check_experiment_file,
        read_record,
        write_json,
    )
    from medspikeformer.experiments.spec import base_config, fingerprint, pin_split

    if spec.folds < 2:
        raise ConfigError(f"--folds {spec.folds}: cross-validation needs at least 2 folds")
    if spec.checkpoint not in ("last", "best"):
        raise ConfigError(f"--checkpoint {spec.checkpoint!r}: use last or best")
    if spec.eval_split not in ("val", "test"):
        raise ConfigError(f"--split {spec.eval_split!r}: cv scores val (the folds) or test")
    fold_runner = fold_runner or run_fold
    out = Path(spec.out)
    ensure_writable_dir(out)
    exp = spec.experiment_spec()
    shared = base_config(exp)
    shared.data.folds, shared.data.fold = spec.folds, 0  # checked with the options it runs under
    validate_config(shared, check_model=False)
    shared.data.folds = shared.data.fold = None
    check_experiment_file(exp, fingerprint(shared))
    shared = pin_split(shared, out)

    results: list[dict[str, Any]] = []
    trained, reused = [], []
    for k in range(spec.folds):
        run_dir = out / "folds" / f"fold{k}"
        config = fold_config(shared, spec.folds, k, run_dir)
        result = read_record(run_dir / RESULT_NAME, log)
        if result is not None:
            reused.append(k)
            if log:
                log(f"[{k + 1}/{spec.folds}] fold {k}: finished earlier, reusing it")
        else:
            validate_config(config)
            if log:
                log(f"[{k + 1}/{spec.folds}] fold {k}: training in {run_dir}")
            result = fold_runner(spec, k, run_dir, config)
            trained.append(k)
        results.append(result)
    agg = aggregate(results)
    summary = {
        "kind": "cv",
        "dataset": spec.dataset,
        "folds": spec.folds,
        "split": spec.eval_split,
        "checkpoint": spec.checkpoint,
        "per_fold": [{"fold": r["fold"], **r["metrics"]} for r in results],
        "mean_std": agg,
    }
    md_path, json_path = out / "cv.md", out / "cv.json"
    atomic_write_text(md_path, to_markdown(spec, results, agg))
    write_json(json_path, summary)
    if log:
        log(f"wrote {md_path}, {json_path}")
    return CVResult(results, summary, md_path, json_path, trained, reused)
