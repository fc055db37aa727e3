"""What an experiment runs: :class:`ExperimentSpec` (the request), :class:`ExperimentResult` (what
it did), and each row's resolved training config (shared config + the row's switch).

Every row uses the same resolved configuration (dataset config < recipe < ``--set`` overrides)
apart from its own switch, so all rows share one training budget. Seeds: seed ``k`` (0-based)
trains with ``train.seed = base seed + k``; the data split keeps its own seed
(:func:`pin_split`), so every seed and every row is scored on the same test images.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medspikeformer.errors import ConfigError
from medspikeformer.experiments.rows import REFERENCE_ROW, Row, ablation_rows, compare_rows
from medspikeformer.experiments.tables import RowSummary
from medspikeformer.outputs import atomic_write_text

__all__ = [
    "PAPER_PROTOCOL_KINDS",
    "ExperimentResult",
    "ExperimentSpec",
    "base_config",
    "fingerprint",
    "pin_split",
    "resolve_row_config",
]


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


def fingerprint(config) -> str:
    """Canonical JSON of a config without its output folder (two rows with equal fingerprints
    would train the very same thing)."""
    from medspikeformer.engine.config import config_to_dict

    data = config_to_dict(config)
    data.pop("out", None)
    return json.dumps(data, sort_keys=True, default=str)
