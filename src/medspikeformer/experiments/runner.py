"""Run an experiment (comparison or ablation): train + evaluate + profile every row, then tabulate.

Layout of an experiment folder ``OUT``::

    OUT/
      experiment.json          what was asked: kind, dataset, recipe, rows, seeds, the shared config
      rows/<row>/seed<k>/      the engine's run directory of that row and seed (config.yaml,
                               split.json, metrics.csv, best.pt, last.pt, ...)
      rows/<row>/seed<k>/result.json   written last: test metrics, per-image Dice, profile, time
      results.md  results.csv  summary.json
      metric_bars.png  accuracy_vs_energy.png

Resumability: a row/seed whose ``result.json`` exists is finished and never redone; one whose run
directory holds ``last.pt`` but no result is resumed through the engine's resume (exactly where it
stopped); anything else is trained from scratch. Every row uses the same resolved configuration
(dataset config < recipe < ``--set`` overrides) apart from its own switch, so all rows share one
training budget; ``experiment.json`` pins that shared configuration, and re-running into the same
``OUT`` with another one is refused (rows trained under different budgets must not share a table).

Seeds: seed ``k`` (0-based) trains with ``train.seed = base seed + k``; the data split keeps its own
seed, so every seed and every row is scored on the same test images (needed by the paired test).

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

import csv
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medspikeformer.errors import ConfigError
from medspikeformer.experiments.rows import REFERENCE_ROW, Row, ablation_rows, compare_rows
from medspikeformer.experiments.tables import RowSummary, summarise, to_csv, to_markdown
from medspikeformer.outputs import atomic_write_text

__all__ = [
    "ExperimentResult",
    "ExperimentSpec",
    "resolve_row_config",
    "run_experiment",
]

RESULT_NAME = "result.json"
TRAINED_NAME = "trained.json"
EXPERIMENT_NAME = "experiment.json"


@dataclass
class ExperimentSpec:
    """What to run.

    Attributes:
        kind: ``"compare"``, ``"ablation"`` or ``"reproduce"`` (the MedSpikeFormer row of
            Table 1 alone, by default at the dataset config, i.e. the paper recipe; ``rows``
            may add other compare rows).
        dataset: dataset registry name (``kvasir``, ``synthetic``, ...).
        out: experiment folder.
        data_root: dataset root (``None`` for the synthetic set).
        recipe: recipe name/path merged over the dataset config (e.g. ``cpu-quick``).
        config: dataset config name/path; default: the shipped ``<dataset>`` config when there is one.
        rows: row keys (``None``: all rows of the experiment).
        seeds: number of seeds per row.
        sets: extra ``key=value`` overrides applied to every row (same budget for all).
        eval_split: the split scored for the tables.
        device: ``auto``/``cpu``/``cuda`` for training and evaluation.
        checkpoint: ``last`` (default: the end of training, no selection on the test set) or
            ``best`` (the epoch with the best val mIoU; with the ``paper`` split val is the test
            set, which is the authors' protocol but an optimistic one).
    """

    kind: str
    dataset: str
    out: Path
    data_root: str | None = None
    recipe: str | None = None
    config: str | None = None
    rows: Sequence[str] | None = None
    seeds: int = 1
    sets: Sequence[str] = ()
    eval_split: str = "test"
    device: str = "auto"
    checkpoint: str = "last"

    def row_list(self) -> list[Row]:
        if self.kind == "compare":
            return compare_rows(self.rows)
        if self.kind == "reproduce":
            return compare_rows(self.rows or [REFERENCE_ROW["reproduce"]])
        if self.kind == "ablation":
            return ablation_rows(self.rows)
        raise ConfigError(f"unknown experiment kind {self.kind!r} (compare, ablation or reproduce)")

    @property
    def reference(self) -> str:
        return REFERENCE_ROW[self.kind]


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` did and wrote."""

    summaries: list[RowSummary]
    markdown: Path
    csv: Path
    summary_json: Path
    plots: list[Path]
    trained: list[str] = field(default_factory=list)  # "row/seed" trained (or resumed) now
    reused: list[str] = field(default_factory=list)  # "row/seed" whose result already existed
    aliased: dict[str, str] = field(default_factory=dict)  # row → row whose run it shares
    busy: list[str] = field(default_factory=list)  # "row/seed" being trained by another process


# ----------------------------------------------------------------------------- configuration


def _dataset_config(spec: ExperimentSpec) -> str | None:
    from medspikeformer.engine.config import CONFIG_DIR

    if spec.config is not None:
        return spec.config
    candidate = CONFIG_DIR / f"{spec.dataset}.yaml"
    return str(candidate) if candidate.is_file() else None


#: Experiments that reproduce the paper's tables keep its protocol (``data.validation: test``,
#: checkpoint selection on the test part) for every row; ``--set data.validation=train`` undoes it.
PAPER_PROTOCOL_KINDS = ("reproduce", "ablation")


def base_config(spec: ExperimentSpec):
    """The configuration every row shares: dataset config < recipe < data flags < ``--set``."""
    from medspikeformer.engine.config import load_config

    data: dict[str, Any] = {"dataset": spec.dataset}
    if spec.kind in PAPER_PROTOCOL_KINDS:  # the paper's tables: selection on the test part
        data["validation"] = "test"
    if spec.data_root is not None:
        data["root"] = str(spec.data_root)
    overrides: dict[str, Any] = {"data": data}
    if spec.device != "auto":
        overrides["train"] = {"device": spec.device}
    return load_config(
        _dataset_config(spec), recipe=spec.recipe, overrides=overrides, sets=list(spec.sets)
    )


def pin_split(config, out: Path):
    """Fix the test images of the whole experiment: write ``OUT/split.json`` once and point
    ``data.split_spec`` at it.

    The engine draws the random split with ``train.seed``; without this, seed k would train and
    test on other images than seed 0, and no paired test would be possible. For the synthetic set
    the generator seed is pinned too (its images are drawn from that seed). Returns the config.
    """
    from medspikeformer.engine.datasets import dataset_from_config

    d = config.data
    if d.dataset == "synthetic":
        d.options = {**d.options, "seed": d.options.get("seed") or config.train.seed}
    path = Path(out) / "split.json"
    if not path.is_file():
        # the parts as the spec draws them: each run carves its validation part (or fold) from
        # the pinned training images under its own data.validation and seed
        plain = dataclasses.replace(d, validation="test", folds=None, fold=None)
        info = dataset_from_config(dataclasses.replace(config, data=plain), "train").split_info
        if info["validation"]["protocol"] == "test":  # no val part of its own: leave val out
            ids = {k: v for k, v in info["ids"].items() if k != "val"}
            info = {**{k: v for k, v in info.items() if k != "validation"}, "ids": ids}
        atomic_write_text(path, json.dumps(info, indent=1) + "\n")
    d.split_spec = str(path)
    return config


def resolve_row_config(spec: ExperimentSpec, row: Row, seed_index: int, run_dir: Path, shared=None):
    """The full TrainConfig of ``row`` / seed ``seed_index``: the shared config + the row's switch.

    * the row's model replaces the shared one; the shared model options (the recipe's timesteps,
      width, ...) are kept for every row of the MedSpikeFormer family, only ``in_channels`` for
      other models; ``row.model_overrides`` are applied on top;
    * ``row.train_overrides`` go into the matching config sections;
    * rows whose model registers no default teacher (the baselines ssa/sdt/qk/ann/unet:
      ``model_info(name).default_teacher == "none"``) train without a teacher
      (``teacher.mode = none``), as the paper's baselines did; the ``medspikeformer*`` rows keep
      the shared teacher mode (joint by default);
    * the seed becomes ``train.seed + seed_index``.
    """
    from medspikeformer.engine.config import (
        config_from_dict,
        config_to_dict,
        dotted_to_nested,
        merge_dicts,
        model_options_for,
    )
    from medspikeformer.models import model_info

    shared = shared if shared is not None else base_config(spec)
    base = config_to_dict(shared)
    shared_model = dict(base.get("model") or {})
    shared_name = shared_model.pop("name", None)
    shared_model = model_options_for(row.model, shared_name, shared_model)
    model = {"name": row.model, **shared_model, **dict(row.model_overrides)}
    data = dict(base)
    data["model"] = model
    if model_info(row.model).default_teacher == "none":
        data = merge_dicts(data, {"teacher": {"mode": "none"}})
    data = merge_dicts(data, dotted_to_nested(row.train_overrides))
    data["train"] = {**data["train"], "seed": shared.train.seed + int(seed_index)}
    data["out"] = str(run_dir)
    return config_from_dict(data)


def _fingerprint(config) -> str:
    """Canonical JSON of a config without its output folder (two rows with equal fingerprints
    would train the very same thing)."""
    from medspikeformer.engine.config import config_to_dict

    data = config_to_dict(config)
    data.pop("out", None)
    return json.dumps(data, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- engine adapters


def _train_time_from_csv(run_dir: Path) -> float | None:
    """Sum of the per-epoch wall times in the engine's ``metrics.csv`` (covers resumed runs)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "time_s" not in rows[0]:  # the engine's per-epoch wall time column
        return None
    try:
        return float(sum(float(r["time_s"]) for r in rows if r.get("time_s") not in (None, "")))
    except ValueError:
        return None


def train_row(config, run_dir: Path) -> dict[str, Any]:
    """Train one row, or resume it from ``run_dir/last.pt``; returns the engine's result dict.

    The result is also written to ``run_dir/trained.json``: its presence means training is over
    (also after an early stop), so an interruption during evaluation does not train again.
    """
    from medspikeformer.engine import train

    marker = run_dir / TRAINED_NAME
    done = read_record(marker)
    if done is not None:
        return done
    resume = run_dir if (run_dir / "last.pt").is_file() else None
    result = dict(train(config, resume=resume) or {})
    result["resumed"] = resume is not None
    _write_json(marker, result)
    return result


def evaluate_row(config, run_dir: Path, split: str, checkpoint: str = "last") -> dict[str, Any]:
    """Score the run's ``last.pt`` (or ``best.pt``) on ``split`` of the experiment's split file."""
    from medspikeformer.engine.checkpoint import load_model
    from medspikeformer.engine.datasets import dataset_from_config
    from medspikeformer.engine.task import class_names
    from medspikeformer.inference import evaluate
    from medspikeformer.runtime import resolve_device

    ckpt_path = run_dir / f"{checkpoint}.pt"
    if not ckpt_path.is_file():
        ckpt_path = run_dir / "last.pt"
    model, ckpt = load_model(ckpt_path)
    dataset = dataset_from_config(config, split, in_channels=model.in_channels)
    device = resolve_device(config.train.device)
    names = class_names(model, config)  # None for a binary model
    res = evaluate(
        model.to(device),
        dataset,
        threshold=config.train.threshold,
        device=device,
        class_names=names,
    )
    return {"result": res, "model": model, "dataset": dataset, "ckpt": ckpt, "path": ckpt_path}


def _eval_payload(res: Any) -> tuple[dict[str, float], dict[str, float]]:
    """``(global metrics, {id: dice})`` from the inference :class:`EvalResult`."""
    metrics = res.metrics
    dice = {str(p["id"]): float(p["dice"]) for p in res.per_image}
    out = {
        "miou": metrics.get("miou"),
        "dsc": metrics.get("dsc"),
        "acc": metrics.get("acc"),
        "spe": metrics.get("spe"),
        "sen": metrics.get("sen"),
        "dice_per_image": metrics.get("mean_dice"),
        "iou_per_image": metrics.get("mean_iou"),
    }
    if out["dice_per_image"] is None and dice:
        out["dice_per_image"] = float(sum(dice.values()) / len(dice))
    return {k: (None if v is None else float(v)) for k, v in out.items()}, dice


def profile_row(model, dataset, size: int, max_images: int = 4) -> dict[str, Any]:
    """Params, GFLOPs, mean firing rate and energy per image at the training size.

    Firing rates depend on the input, so they are measured on the first ``max_images`` test
    images (an empty dataset: the profiler's seeded random input; recorded in
    ``firing_rate_input``). Counts are divided by the batch: per image.
    """
    import torch

    from medspikeformer.profile import profile_model

    model = model.cpu().eval()
    n = min(max_images, len(dataset))
    kwargs: dict[str, Any] = {"size": (size, size)}
    source = "random"
    if n:
        kwargs["inputs"] = torch.stack([dataset[i]["image"] for i in range(n)])
        kwargs["batch"] = n
        source = f"{n} test images"
    report = profile_model(model, **kwargs)
    per = 1.0 / int(report.input_shape[0])
    spiking = bool(report.is_spiking)
    return {
        "size": [size, size],
        "params_m": report.params / 1e6,
        "gflops": report.flops * per / 1e9,
        "gflops_per_timestep": report.flops_per_timestep * per / 1e9,
        "gmacs": report.macs * per / 1e9,
        "timesteps": int(report.timesteps),
        "firing_rate": report.mean_firing_rate if spiking else None,
        "firing_rate_input": source if spiking else None,
        "energy_mj": report.energy_mj * per,
    }


# ----------------------------------------------------------------------------- the runner


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


def _write_json(path: Path, data: Any) -> None:
    from medspikeformer.engine.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def _check_experiment_file(spec: ExperimentSpec, shared: str) -> None:
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
    _write_json(path, record)


def run_row(
    spec: ExperimentSpec, row: Row, seed_index: int, run_dir: Path, config
) -> dict[str, Any]:
    """Train/resume, evaluate and profile one row and seed; writes and returns its result."""
    from medspikeformer.engine.config import config_to_dict

    train_info = train_row(config, run_dir)
    evaluated = evaluate_row(config, run_dir, spec.eval_split, spec.checkpoint)
    metrics, per_image = _eval_payload(evaluated["result"])
    profile = profile_row(evaluated["model"], evaluated["dataset"], config.data.size)
    train_time = _train_time_from_csv(run_dir)
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
    _write_json(run_dir / RESULT_NAME, result)
    return result


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
    from medspikeformer.experiments.plots import (
        plot_accuracy_vs_energy,
        plot_dsc_over_time,
        plot_metric_bars,
    )

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
    _check_experiment_file(spec, _fingerprint(shared))
    shared = pin_split(shared, out)

    results: dict[str, list[dict[str, Any]]] = {r.key: [] for r in rows}
    trained, reused, busy = [], [], []
    aliased: dict[str, str] = {}
    seen: dict[str, str] = {}  # fingerprint (seed 0) → first row key
    for row in rows:
        cfg0 = resolve_row_config(spec, row, 0, out / "rows" / row.key / "seed0", shared)
        fp = _fingerprint(cfg0)
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
                except ConfigError as exc:
                    if "in use by process" not in str(exc):
                        raise
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
    md_path, csv_path, json_path = out / "results.md", out / "results.csv", out / "summary.json"
    atomic_write_text(md_path, _markdown_document(spec, summaries, results))
    atomic_write_text(csv_path, to_csv(summaries))
    _write_json(
        json_path,
        {
            "kind": spec.kind,
            "dataset": spec.dataset,
            "reference": spec.reference,
            "rows": [s.to_dict() for s in summaries],
        },
    )
    title = f"{spec.kind} on {spec.dataset} ({spec.recipe or 'dataset config'})"
    plots = [
        plot_metric_bars(summaries, out / "metric_bars.png", title=title),
        plot_accuracy_vs_energy(summaries, out / "accuracy_vs_energy.png", title=title),
    ]
    curves = {
        r.label: out / "rows" / aliased.get(r.key, r.key) / "seed0" / "metrics.csv" for r in rows
    }
    curves = {label: p for label, p in curves.items() if p.is_file()}
    if curves:
        plots.append(plot_dsc_over_time(curves, out / "dsc_over_time.png", title=title))
    _progress(log, f"wrote {md_path}, {csv_path}, {json_path}, " + ", ".join(map(str, plots)))
    if busy:
        _progress(log, f"not in these tables yet (running elsewhere): {', '.join(busy)}")
    return ExperimentResult(
        summaries, md_path, csv_path, json_path, plots, trained, reused, aliased, busy
    )


def _row(rows: Sequence[Row], key: str) -> Row:
    return next(r for r in rows if r.key == key)


def _markdown_document(
    spec: ExperimentSpec, summaries: Sequence[RowSummary], results: Mapping[str, Sequence[Mapping]]
) -> str:
    """The table plus the facts needed to read it (budget, test set size, conventions)."""
    ref = next((s for s in summaries if s.is_reference), None)
    any_result = next((r for rs in results.values() for r in rs), None)
    lines = [f"# {spec.kind.capitalize()} on {spec.dataset}", ""]
    if any_result is not None:
        cfg = any_result.get("config", {})
        tr, data = cfg.get("train", {}), cfg.get("data", {})
        lines += [
            f"Budget shared by every row: recipe `{spec.recipe or 'none'}`, size {data.get('size')}, "
            f"{tr.get('epochs')} epochs, batch {tr.get('batch_size')}, "
            f"lr {cfg.get('optim', {}).get('lr')}, T = {cfg.get('model', {}).get('timesteps', 'model default')}"
            f"; evaluated on the `{spec.eval_split}` split ({any_result.get('n_test')} images).",
            "",
        ]
        if data.get("validation") == "test":
            lines += [
                "Model selection under the paper's protocol (`data.validation: test`): the "
                "validation part (schedule, `best.pt`) is the test part.",
                "",
            ]
    fr_source = next(
        (
            r["profile"].get("firing_rate_input")
            for rs in results.values()
            for r in rs
            if (r.get("profile") or {}).get("firing_rate_input")
        ),
        None,
    )
    fr_text = (
        f"on {fr_source}" if fr_source and fr_source != "random" else "on a seeded random input"
    )
    lines += [
        to_markdown(summaries, reference_label=ref.label if ref else "reference"),
        "Metrics from one pixel confusion matrix over the whole split (threshold 0.5); Dice/img = "
        "mean per-image Dice. Cells are mean ± sample std over seeds. p: two-sided Wilcoxon "
        "signed-rank test on per-image Dice (each image's Dice averaged over seeds first; "
        "n = images, Δ̃ = median of reference − row). Params: inference modules only. "
        "GFLOPs (2 FLOPs per MAC, all T timesteps) and energy per image at the training size "
        "(energy: 4.6 pJ per real-valued MAC + 0.9 pJ per SOP, 45 nm); firing rate = mean over "
        f"LIF layers {fr_text}. Paper: the paper's figure for this dataset (Table 1 metric for "
        "compare, mIoU of Tables 2–3 for ablation), obtained with another budget and more data.",
        "",
    ]
    return "\n".join(lines)
