"""The experiment's report: ``results.md`` (the table and the prose needed to read it),
``results.csv``, ``summary.json`` and the plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medspikeformer.experiments.folders import write_json
from medspikeformer.experiments.rows import Row
from medspikeformer.experiments.spec import ExperimentSpec
from medspikeformer.experiments.tables import RowSummary, to_csv, to_markdown
from medspikeformer.outputs import atomic_write_text

__all__ = ["markdown_document", "write_report"]


def write_report(
    spec: ExperimentSpec,
    rows: Sequence[Row],
    summaries: Sequence[RowSummary],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    aliased: Mapping[str, str],
) -> tuple[Path, Path, Path, list[Path]]:
    """Write the tables, ``summary.json`` and the plots into ``spec.out``; returns their paths
    ``(results.md, results.csv, summary.json, [plots])``."""
    from medspikeformer.experiments.plots import (
        plot_accuracy_vs_energy,
        plot_dsc_over_time,
        plot_metric_bars,
    )

    out = Path(spec.out)
    md_path, csv_path, json_path = out / "results.md", out / "results.csv", out / "summary.json"
    atomic_write_text(md_path, markdown_document(spec, summaries, results))
    atomic_write_text(csv_path, to_csv(summaries))
    write_json(
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
    return md_path, csv_path, json_path, plots


def markdown_document(
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
