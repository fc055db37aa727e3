"""Row definitions of the paper's tables (Table 1 comparison; Tables 2–3 ablations; timesteps).

A row is one model + the overrides that make it that row; every row of one experiment is trained
with the same recipe (same data, size, epochs, batch, optimiser, seed), so only the row's own
switch differs. The paper's published figures are kept beside each row so that the tables can show
them next to ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medspikeformer.errors import ConfigError
from medspikeformer.models.medspikeformer import PAPER_NETWORK

__all__ = [
    "ABLATION_ROWS",
    "COMPARE_ROWS",
    "PAPER_TABLE1",
    "PAPER_TABLE1_METRIC",
    "REFERENCE_ROW",
    "Row",
    "ablation_rows",
    "compare_rows",
    "paper_value",
]

REFERENCE_ROW = {"compare": "medspikeformer", "ablation": "full", "reproduce": "medspikeformer"}
"""Key of the row every other row is tested against in each experiment (MedSpikeFormer, full)."""


@dataclass(frozen=True)
class Row:
    """One table row.

    Attributes:
        key: unique, file-system safe name (also the row's folder under ``<out>/rows/``).
        label: what the table shows.
        model: registry name for ``create_model``.
        model_overrides: extra ``create_model`` keyword arguments (e.g. ``{"timesteps": 1}``).
        train_overrides: dotted training-config overrides (keys of
            ``medspikeformer.engine.config.TrainConfig``, e.g. ``{"teacher.mode": "none"}``),
            applied over the recipe.
        paper: the paper's published figures for this row, ``{dataset: {metric: value}}``.
    """

    key: str
    label: str
    model: str
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    train_overrides: Mapping[str, Any] = field(default_factory=dict)
    paper: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


# Table 1 reports one metric per dataset (its "Params"/"GFLOPs" rows are a copy error, see DESIGN.md).
PAPER_TABLE1_METRIC = {
    "isic2018": "miou",
    "kvasir": "dsc",
    "monuseg": "acc",
    "covid19": "miou",
    "busi": "dsc",
}
_DATASETS = ("isic2018", "kvasir", "monuseg", "covid19", "busi")


def _t1(*values: float) -> dict[str, dict[str, float]]:
    return {d: {PAPER_TABLE1_METRIC[d]: v} for d, v in zip(_DATASETS, values, strict=True)}


def _miou(*values: float) -> dict[str, dict[str, float]]:
    return {d: {"miou": v} for d, v in zip(_DATASETS, values, strict=True)}


# Paper Table 1 columns that correspond to our rows ("SDSA" there is Yao et al.'s spike-driven
# self-attention, i.e. our ``sdt`` baseline; "Our" is MedSpikeFormer).
PAPER_TABLE1: dict[str, dict[str, dict[str, float]]] = {
    "medspikeformer": _t1(0.8550, 0.9081, 0.9812, 0.8534, 0.9093),
    "unet": _t1(0.8004, 0.8891, 0.9513, 0.7330, 0.8459),
    "qk": _t1(0.7706, 0.8614, 0.9475, 0.7658, 0.8521),
    "sdt": _t1(0.7853, 0.8579, 0.9572, 0.7970, 0.8726),
}

# Tables 2 and 3 (mIoU). Their "Ours" row disagrees with Table 1, and w/o KL == w/o L2 there
# (both copied as printed; see DESIGN.md §4).
_PAPER_ABLATION: dict[str, dict[str, dict[str, float]]] = {
    "full": _miou(0.8550, 0.8534, 0.7014, 0.7138, 0.6006),
    "wo_sdsa": _miou(0.7727, 0.7866, 0.4785, 0.3869, 0.5231),
    "wo_sa": _miou(0.7866, 0.7647, 0.5462, 0.5792, 0.5384),
    "wo_sc": _miou(0.7999, 0.8096, 0.6166, 0.6049, 0.5508),
    "wo_aa": _miou(0.8243, 0.8054, 0.6814, 0.6411, 0.5281),
    "wo_ai": _miou(0.8567, 0.8116, 0.7063, 0.6895, 0.5673),
    "wo_ia": _miou(0.8492, 0.8282, 0.7079, 0.6763, 0.5585),
    "wo_ii": _miou(0.8344, 0.8140, 0.6988, 0.6519, 0.5032),
    "wo_kl": _miou(0.7743, 0.7782, 0.4988, 0.3988, 0.5108),
    "wo_l2": _miou(0.7743, 0.7782, 0.4988, 0.3988, 0.5108),
}

PAPER_TRAINING: Mapping[str, Any] = {"train.init_from": None}
"""The paper trains its network from scratch: a recipe's twin initialisation is undone on the rows
that pin :data:`PAPER_NETWORK` (the paper's binary LIF network, whatever a recipe sets)."""
INTEGER_SPIKES: Mapping[str, Any] = {
    "neuron": "ilif",
    "levels": 4,
    "v_threshold": 1.0,
    "head": "spike",
    "head_gain": 1.0,
}
"""The integer-spike MedSpikeFormer of the neuron rows (I-LIF, D = 4, V_th = 1, spike head: the
``cpu`` recipe's network; docs/results.md). The ablation's ``ilif`` row switches the neuron alone;
the comparison's ``medspikeformer_ilif`` row is the whole chosen configuration, started from its
ANN twin (``train.init_from: twin``)."""

COMPARE_ROWS: tuple[Row, ...] = (
    Row(
        "medspikeformer",
        "MedSpikeFormer",
        "medspikeformer",
        model_overrides=PAPER_NETWORK,
        train_overrides=PAPER_TRAINING,
        paper=PAPER_TABLE1["medspikeformer"],
    ),
    Row(
        "medspikeformer_ilif",
        "MedSpikeFormer, integer spikes (twin start)",
        "medspikeformer",
        model_overrides=INTEGER_SPIKES,
        train_overrides={"train.init_from": "twin"},
    ),
    Row("ssa", "Spikformer SSA", "ssa"),
    Row("sdt", "Spike-driven SA (SDT v1)", "sdt", paper=PAPER_TABLE1["sdt"]),
    Row("qk", "QKFormer token attn.", "qk", paper=PAPER_TABLE1["qk"]),
    Row("ann", "ANN twin (softmax SA)", "ann"),
    Row("unet", "U-Net (MONAI)", "unet", paper=PAPER_TABLE1["unet"]),
)


def _paper_row(key: str, label: str, model: str, **fields: Any) -> Row:
    """A row of the paper's ablation tables: the paper's network (:data:`PAPER_NETWORK`, trained
    from scratch) with the row's own switch on top."""
    return Row(
        key,
        label,
        model,
        model_overrides={**PAPER_NETWORK, **fields.pop("model_overrides", {})},
        train_overrides={**PAPER_TRAINING, **fields.pop("train_overrides", {})},
        **fields,
    )


ABLATION_ROWS: tuple[Row, ...] = (
    _paper_row("full", "Ours (full)", "medspikeformer", paper=_PAPER_ABLATION["full"]),
    _paper_row("wo_sdsa", "w/o SDSA", "medspikeformer_wo_sdsa", paper=_PAPER_ABLATION["wo_sdsa"]),
    _paper_row(
        "wo_sa",
        "w/o SA (no teacher)",
        "medspikeformer",
        train_overrides={"teacher.mode": "none"},
        paper=_PAPER_ABLATION["wo_sa"],
    ),
    _paper_row("wo_sc", "w/o SC", "medspikeformer_wo_sc", paper=_PAPER_ABLATION["wo_sc"]),
    _paper_row("wo_aa", "w/o A-A", "medspikeformer_wo_aa", paper=_PAPER_ABLATION["wo_aa"]),
    _paper_row("wo_ai", "w/o A-I", "medspikeformer_wo_ai", paper=_PAPER_ABLATION["wo_ai"]),
    _paper_row("wo_ia", "w/o I-A", "medspikeformer_wo_ia", paper=_PAPER_ABLATION["wo_ia"]),
    _paper_row("wo_ii", "w/o I-I", "medspikeformer_wo_ii", paper=_PAPER_ABLATION["wo_ii"]),
    _paper_row(
        "wo_kl",
        "w/o KL",
        "medspikeformer",
        train_overrides={"teacher.align.use_kl": False},
        paper=_PAPER_ABLATION["wo_kl"],
    ),
    _paper_row(
        "wo_l2",
        "w/o L2",
        "medspikeformer",
        train_overrides={"teacher.align.use_l2": False},
        paper=_PAPER_ABLATION["wo_l2"],
    ),
    _paper_row("t1", "T = 1", "medspikeformer", model_overrides={"timesteps": 1}),
    _paper_row("t2", "T = 2", "medspikeformer", model_overrides={"timesteps": 2}),
    _paper_row("t4", "T = 4", "medspikeformer", model_overrides={"timesteps": 4}),
    _paper_row("t8", "T = 8", "medspikeformer", model_overrides={"timesteps": 8}),
    Row("ilif", "integer spikes (I-LIF, D = 4)", "medspikeformer", model_overrides=INTEGER_SPIKES),
)


def _select(rows: Sequence[Row], keys: Sequence[str] | None, what: str) -> list[Row]:
    if not keys:
        return list(rows)
    by_key = {r.key: r for r in rows}
    # Allow registry names as aliases of the compare rows and row keys for both.
    unknown = [k for k in keys if k not in by_key]
    if unknown:
        raise ConfigError(f"unknown {what} row(s) {', '.join(unknown)}; known: {', '.join(by_key)}")
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{what} rows given twice: {', '.join(keys)}")
    return [by_key[k] for k in keys]


def compare_rows(keys: Sequence[str] | None = None) -> list[Row]:
    """The comparison rows (all, or those named by ``keys`` in that order).

    The reference row (MedSpikeFormer) is always included, first, because every other row is
    tested against it.
    """
    rows = _select(COMPARE_ROWS, keys, "compare")
    if all(r.key != REFERENCE_ROW["compare"] for r in rows):
        rows.insert(0, COMPARE_ROWS[0])
    return rows


def ablation_rows(keys: Sequence[str] | None = None) -> list[Row]:
    """The ablation rows (all, or those named by ``keys``); the full model is always included."""
    rows = _select(ABLATION_ROWS, keys, "ablation")
    if all(r.key != "full" for r in rows):
        rows.insert(0, ABLATION_ROWS[0])
    return rows


def paper_value(row: Row, dataset: str) -> tuple[str, float] | None:
    """The paper's figure for ``row`` on ``dataset`` as ``(metric, value)``, or ``None``."""
    figures = row.paper.get(dataset)
    if not figures:
        return None
    metric, value = next(iter(figures.items()))
    return metric, float(value)
