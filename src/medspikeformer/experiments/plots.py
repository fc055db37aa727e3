"""Experiment figures (PNG, headless matplotlib): metric bars per row; accuracy vs energy; DSC
over training time per run.

Both take the :class:`~medspikeformer.experiments.tables.RowSummary` list of one experiment, so they
show exactly what the tables show (means, with the std over seeds as error bars when there are
several seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medspikeformer.experiments.tables import RowSummary
from medspikeformer.outputs import atomic_path

__all__ = ["dsc_over_time", "plot_accuracy_vs_energy", "plot_dsc_over_time", "plot_metric_bars"]

_BAR_METRICS = (
    ("miou", "mIoU"),
    ("dsc", "DSC"),
    ("dice_img", "Dice/img"),
    ("sen", "Sen"),
    ("spe", "Spe"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_metric_bars(
    summaries: Sequence[RowSummary], out_png: str | Path, *, title: str = ""
) -> Path:
    """Grouped bars: for each metric (mIoU, DSC, Dice/img, Sen, Spe) one bar per row, ± std.

    Returns the written path.
    """
    import numpy as np

    plt = _pyplot()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    metrics = [(k, h) for k, h in _BAR_METRICS if any(k in s.values for s in summaries)]
    n_rows = max(len(summaries), 1)
    width = 0.8 / n_rows
    x = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(max(7.5, 1.6 * len(metrics) + 0.35 * n_rows + 2), 4.2), dpi=120)
    cmap = plt.get_cmap("tab20" if n_rows > 10 else "tab10")
    for j, s in enumerate(summaries):
        means = [s.values.get(k, (np.nan, None))[0] for k, _ in metrics]
        stds = [s.values.get(k, (np.nan, None))[1] or 0.0 for k, _ in metrics]
        ax.bar(
            x + (j - (n_rows - 1) / 2) * width,
            means,
            width,
            yerr=stds if len(s.seeds) > 1 else None,
            capsize=2,
            label=s.label,
            color=cmap(j % cmap.N),
            edgecolor="black" if s.is_reference else "none",
            linewidth=1.2,
        )
    ax.set_xticks(x, [h for _, h in metrics])
    finite = [s.values[k][0] for s in summaries for k, _ in metrics if k in s.values]
    low = min(finite) if finite else 0.0
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    ax.set_ylabel("score (test set)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out_png


MIN_METRIC_SPAN = 0.1
"""Smallest y range of a metric axis: rows 0.001 apart must not look a whole axis apart."""


def _at_least(ax: Any, span: float) -> None:
    """Widen the y axis around its centre to ``span`` when the data spans less (clipped to
    [0, 1], where every metric here lives)."""
    lo, hi = ax.get_ylim()
    if hi - lo >= span:
        return
    centre = (lo + hi) / 2
    lo, hi = max(0.0, centre - span / 2), min(1.0, centre + span / 2)
    if hi - lo < span:  # against a bound: extend the other way
        lo, hi = (0.0, span) if lo == 0.0 else (1.0 - span, 1.0)
    ax.set_ylim(lo, hi)


def plot_accuracy_vs_energy(
    summaries: Sequence[RowSummary],
    out_png: str | Path,
    *,
    metric: str = "dsc",
    title: str = "",
) -> Path:
    """Scatter of ``metric`` (default DSC) against the estimated inference energy per image.

    Spiking rows are circles, ANN rows squares; the x axis is logarithmic when the energies span
    more than a factor of 20. Rows without an energy figure are left out. Returns the path.
    """
    plt = _pyplot()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    # A row that shares another row's run (e.g. T = 2 under a T = 2 recipe) would hide it.
    points = [
        s
        for s in summaries
        if "energy_mj" in s.values and metric in s.values and not s.note.startswith("same run as")
    ]
    for s in points:
        e, e_std = s.values["energy_mj"]
        m, m_std = s.values[metric]
        spiking = "firing_rate" in s.values
        ax.errorbar(
            e,
            m,
            xerr=e_std if e_std else None,
            yerr=m_std if m_std else None,
            fmt="o" if spiking else "s",
            markersize=8 if s.is_reference else 6,
            color="tab:red" if s.is_reference else ("tab:blue" if spiking else "tab:gray"),
            capsize=2,
        )
        ax.annotate(s.label, (e, m), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.margins(x=0.2, y=0.15)
    _at_least(ax, MIN_METRIC_SPAN)
    energies = [s.values["energy_mj"][0] for s in points]
    if energies and min(energies) > 0 and max(energies) / min(energies) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("estimated energy per image (mJ, 45 nm)")
    ax.set_ylabel({"dsc": "DSC", "miou": "mIoU", "dice_img": "Dice/img"}.get(metric, metric))
    ax.grid(alpha=0.3)
    ax.plot([], [], "o", color="tab:blue", label="spiking")
    ax.plot([], [], "s", color="tab:gray", label="ANN")
    ax.plot([], [], "o", color="tab:red", label="reference")
    ax.legend(fontsize=7, loc="best")
    return _finish(plt, fig, ax, out_png, title)


def dsc_over_time(metrics_csv: str | Path) -> tuple[list[float], list[float]]:
    """``(minutes, val DSC)`` per epoch from a run's ``metrics.csv`` (cumulative ``time_s``).

    The engine's ``time_s`` is the wall time of one epoch (train + validation), so the x axis is
    the training time a user waits, validation included.
    """
    from medspikeformer.viz.curves import read_metrics_csv

    cols = read_metrics_csv(metrics_csv)
    if "time_s" not in cols or "val_dsc" not in cols:
        raise ValueError(f"{metrics_csv}: needs the columns time_s and val_dsc")
    minutes, total = [], 0.0
    for t in cols["time_s"]:
        total += t
        minutes.append(total / 60.0)
    return minutes, list(cols["val_dsc"])


def plot_dsc_over_time(
    runs: dict[str, str | Path],
    out_png: str | Path,
    *,
    title: str = "",
    target: float | None = None,
) -> Path:
    """One line per run: validation DSC against cumulative training minutes.

    ``runs`` maps a label to a ``metrics.csv``; ``target`` draws a horizontal reference line.
    """
    plt = _pyplot()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    cmap = plt.get_cmap("tab20" if len(runs) > 10 else "tab10")
    for j, (label, path) in enumerate(runs.items()):
        minutes, dsc = dsc_over_time(path)
        ax.plot(minutes, dsc, label=label, color=cmap(j % cmap.N), lw=1.4)
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("training time (min, train + validation)")
    ax.set_ylabel("val DSC (global)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _finish(plt, fig, ax, out_png, title)


def _finish(plt, fig, ax, out_png: Path, title: str) -> Path:
    """Title, tight layout, write ``out_png``, close the figure; returns the path."""
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out_png
