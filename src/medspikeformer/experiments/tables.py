"""Summaries of experiment results and their Table-1-style markdown / CSV forms.

Input: for each row, the list of its per-seed result dicts (the ``result.json`` files the runner
writes; schema in :mod:`medspikeformer.experiments.runner`). Output: one :class:`RowSummary` per
row with ``mean ± std`` over seeds of every column, the paired Wilcoxon test against the reference
row, and the paper's figure where the paper has one.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medspikeformer.experiments.rows import Row, paper_value
from medspikeformer.experiments.stats import (
    PairedTest,
    mean_std,
    paired_wilcoxon,
    seed_mean_per_image,
)

__all__ = [
    "COLUMNS",
    "Column",
    "RowSummary",
    "summarise",
    "to_csv",
    "to_markdown",
]


@dataclass(frozen=True)
class Column:
    """One numeric column: ``key`` in the summary, where it comes from, how it is printed."""

    key: str
    header: str
    section: str  # "metrics" | "profile" | "run"
    source: str  # key inside that section
    digits: int
    scale: float = 1.0


COLUMNS: tuple[Column, ...] = (
    Column("miou", "mIoU", "metrics", "miou", 4),
    Column("dsc", "DSC", "metrics", "dsc", 4),
    Column("acc", "Acc", "metrics", "acc", 4),
    Column("spe", "Spe", "metrics", "spe", 4),
    Column("sen", "Sen", "metrics", "sen", 4),
    Column("dice_img", "Dice/img", "metrics", "dice_per_image", 4),
    Column("params_m", "Params (M)", "profile", "params_m", 3),
    Column("gflops", "GFLOPs", "profile", "gflops", 2),
    Column("firing_rate", "Firing rate", "profile", "firing_rate", 3),
    Column("energy_mj", "Energy (mJ)", "profile", "energy_mj", 3),
    Column("train_min", "Train (min)", "run", "train_time_s", 1, 1.0 / 60.0),
)


@dataclass
class RowSummary:
    """Aggregate of one row over its seeds.

    Attributes:
        key, label: the row's key and printed label.
        seeds: the seeds that finished.
        values: ``{column key: (mean, std or None)}``; a column is absent where no seed has it
            (e.g. the firing rate of an ANN).
        test: Wilcoxon test of the reference row against this row (``None`` for the reference row
            itself or when either side lacks per-image scores).
        per_seed_p: the same test run seed by seed (seeds both rows share), for inspection.
        paper: ``(metric, value)`` from the paper for this dataset, or ``None``.
        note: free text, e.g. "same configuration as Ours (full)".
    """

    key: str
    label: str
    seeds: list[int]
    values: dict[str, tuple[float, float | None]]
    test: PairedTest | None = None
    per_seed_p: dict[int, float | None] = field(default_factory=dict)
    paper: tuple[str, float] | None = None
    note: str = ""
    is_reference: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "key": self.key,
            "label": self.label,
            "seeds": list(self.seeds),
            "values": {k: {"mean": _nn(m), "std": _nn(s)} for k, (m, s) in self.values.items()},
            "wilcoxon_vs_reference": None if self.test is None else self.test.to_dict(),
            "per_seed_p": {str(k): v for k, v in self.per_seed_p.items()},
            "paper": None
            if self.paper is None
            else {"metric": self.paper[0], "value": self.paper[1]},
            "note": self.note,
            "is_reference": self.is_reference,
        }


def _nn(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _column_values(results: Sequence[Mapping[str, Any]], col: Column) -> list[float]:
    out = []
    for res in results:
        value = (res.get(col.section) or {}).get(col.source)
        if value is None:
            continue
        value = float(value) * col.scale
        if not math.isnan(value):
            out.append(value)
    return out


def _per_image(results: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    return [dict(r["per_image_dice"]) for r in results if r.get("per_image_dice")]


def summarise(
    rows: Sequence[Row],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    reference: str,
    dataset: str,
    notes: Mapping[str, str] | None = None,
) -> list[RowSummary]:
    """Summaries of ``rows`` (in order) from their per-seed ``results``.

    Rows without any result are left out. The reference row's per-image Dice (averaged over its
    seeds) is tested against each other row's (averaged over that row's seeds) with
    :func:`paired_wilcoxon`; see :mod:`medspikeformer.experiments.stats` for why.
    """
    notes = notes or {}
    ref_results = list(results.get(reference, []))
    ref_images = seed_mean_per_image(_per_image(ref_results)) if ref_results else {}
    ref_by_seed = {int(r["seed"]): r for r in ref_results}
    summaries = []
    for row in rows:
        res = list(results.get(row.key, []))
        if not res:
            continue
        values: dict[str, tuple[float, float | None]] = {}
        for col in COLUMNS:
            vals = _column_values(res, col)
            if vals:
                values[col.key] = mean_std(vals)
        summary = RowSummary(
            key=row.key,
            label=row.label,
            seeds=sorted(int(r["seed"]) for r in res),
            values=values,
            paper=paper_value(row, dataset),
            note=notes.get(row.key, ""),
            is_reference=row.key == reference,
        )
        images = _per_image(res)
        if row.key != reference and ref_images and images:
            summary.test = paired_wilcoxon(ref_images, seed_mean_per_image(images))
            for r in res:
                seed = int(r["seed"])
                if seed in ref_by_seed and r.get("per_image_dice"):
                    t = paired_wilcoxon(ref_by_seed[seed]["per_image_dice"], r["per_image_dice"])
                    summary.per_seed_p[seed] = _nn(t.p_value)
        summaries.append(summary)
    return summaries


def _fmt(value: tuple[float, float | None] | None, digits: int) -> str:
    if value is None:
        return "—"
    mean, std = value
    if 0 < abs(mean) < 10 ** -(digits - 1):
        # tiny figures (e.g. GFLOPs of a toy model) keep three significant digits
        text = f"{mean:.3g}"
        return text if std is None else f"{text} ± {std:.2g}"
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _fmt_p(summary: RowSummary) -> str:
    if summary.is_reference:
        return "(reference)"
    t = summary.test
    if t is None:
        return "—"
    if t.note == "all differences zero":
        return f"1 (identical, n={t.n})"
    if math.isnan(t.p_value):
        return f"— ({t.note})"
    p = f"{t.p_value:.2g}" if t.p_value >= 1e-3 else f"{t.p_value:.1e}"
    return f"{p} (n={t.n}, Δ̃={t.median_diff:+.3f})"


_METRIC_NAMES = {"miou": "mIoU", "dsc": "DSC", "acc": "Acc", "spe": "Spe", "sen": "Sen"}


def _fmt_paper(summary: RowSummary) -> str:
    if summary.paper is None:
        return "—"
    metric, value = summary.paper
    return f"{_METRIC_NAMES.get(metric, metric)} {value:.4f}"


def to_markdown(summaries: Sequence[RowSummary], *, reference_label: str = "MedSpikeFormer") -> str:
    """A GitHub markdown table: one line per row, ``mean ± std`` cells, p-values, paper figure.

    The p column is the two-sided Wilcoxon signed-rank p-value of the reference row against the
    row on per-image Dice (n = test images, Δ̃ = median of reference − row).
    """
    headers = ["Row", "Seeds", *(c.header for c in COLUMNS), f"p vs {reference_label}", "Paper"]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(headers) - 2) + ["---"]) + "|",
    ]
    for s in summaries:
        label = s.label + (f" ({s.note})" if s.note else "")
        cells = [label, str(len(s.seeds))]
        cells += [_fmt(s.values.get(c.key), c.digits) for c in COLUMNS]
        cells += [_fmt_p(s), _fmt_paper(s)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(summaries: Sequence[RowSummary]) -> str:
    """CSV with one line per row: ``<col>_mean``/``<col>_std`` for every column, the test, paper."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["row", "label", "n_seeds"]
    for c in COLUMNS:
        header += [f"{c.key}_mean", f"{c.key}_std"]
    header += [
        "wilcoxon_p",
        "wilcoxon_statistic",
        "wilcoxon_n",
        "median_dice_diff",
        "test_note",
        "paper_metric",
        "paper_value",
        "note",
    ]
    writer.writerow(header)

    def num(x: float | None, digits: int = 6) -> str:
        return "" if x is None or math.isnan(x) else f"{x:.{digits}g}"

    for s in summaries:
        line: list[str] = [s.key, s.label, str(len(s.seeds))]
        for c in COLUMNS:
            mean, std = s.values.get(c.key, (math.nan, None))
            line += [num(mean), num(std)]
        t = s.test
        line += [
            "" if t is None else num(t.p_value),
            "" if t is None else num(t.statistic),
            "" if t is None else str(t.n),
            "" if t is None else num(t.median_diff),
            "" if t is None else t.note,
            "" if s.paper is None else s.paper[0],
            "" if s.paper is None else f"{s.paper[1]:.4f}",
            s.note,
        ]
        writer.writerow(line)
    return buf.getvalue()
