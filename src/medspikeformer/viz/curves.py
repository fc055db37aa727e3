"""Training curves from a run's per-epoch metrics CSV (``RUN_DIR/metrics.csv``).

The CSV has one row per epoch and a header; every numeric column is sorted into a panel by its
name:

- **losses**: the loss terms (``train_bce``, ``train_dice``, ``train_align_kl``, ``train_align_l2``,
  ``train_teacher_seg``, ``train_total``, ``val_loss`` …): every column not matched below; columns
  starting with ``val_`` are drawn dashed;
- **validation metrics**: ``*miou``, ``*dsc`` (solid) and ``*mean_dice``, ``*mean_iou`` (dotted);
- **learning rate**: ``lr`` (log scale).

Not drawn: ``epoch``, ``time_s`` and other timings, counters (``nan_skipped``, ``*num_images``),
the confusion counts (``*_tp``, ``*_fp``, ``*_fn``, ``*_tn``), ``acc``/``spe``/``sen`` and their per-class columns (near 1
for small foregrounds, they would flatten the panel), and columns that are empty or all NaN
(e.g. teacher terms of a run without a teacher).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from medspikeformer.errors import DataError
from medspikeformer.viz.cells import save_png

__all__ = ["plot_training_curves", "read_metrics_csv", "sort_columns"]

_METRIC = re.compile(r"miou|dsc|mean_dice|dice_mean|mean_iou|iou_mean")
_LR = re.compile(r"(^|_)lr($|_)")
_SKIP = re.compile(
    r"epoch|step|time|second|duration|skipped|count|nan_|^n_|samples|images"
    r"|(^|_)(tp|fp|fn|tn|acc|spe|sen)$"
    r"|(^|_)(acc|spe|sen)_"  # a K-class run's per-class Acc/Spe/Sen (val_sen_<class>)
)


def read_metrics_csv(path: str | Path) -> dict[str, list[float]]:
    """Read ``path`` into ``{column: values}`` keeping only numeric columns (blank → NaN).

    Raises:
        DataError: missing or unreadable file, or no data rows.
    """
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the metrics CSV ({exc.strerror or exc})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{path}: the metrics CSV has no data rows")
    columns: dict[str, list[float]] = {}
    for name in rows[0]:
        if name is None:
            continue
        values: list[float] = []
        for row in rows:
            cell = (row.get(name) or "").strip()
            if cell == "":
                values.append(math.nan)
                continue
            try:
                values.append(float(cell))
            except ValueError:
                break
        else:
            columns[name] = values
    return columns


def sort_columns(columns: list[str]) -> dict[str, list[str]]:
    """Split column names into the ``losses``, ``metrics`` and ``lr`` panels (see module doc)."""
    panels: dict[str, list[str]] = {"losses": [], "metrics": [], "lr": []}
    for name in columns:
        key = name.lower()
        if _SKIP.search(key) and not _METRIC.search(key):
            continue
        if _METRIC.search(key):
            panels["metrics"].append(name)
        elif _LR.search(key):
            panels["lr"].append(name)
        else:
            panels["losses"].append(name)
    return panels


CURVES_IN_PANEL = 10
"""Curves a panel's legend may cover; beyond (per-class metrics) the legend goes below it."""


def line_colours(count: int) -> list[tuple[float, ...]]:
    """``count`` distinct colours: matplotlib's ``tab10`` up to 10 lines, ``tab20`` up to 20, then
    evenly spaced hues (the default cycle repeats after 10, and per-class curves exceed it)."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["hsv"](i / count) for i in range(count)]


def plot_training_curves(metrics_csv: str | Path, out_png: str | Path) -> Path:
    """Draw each loss term, the validation mIoU/DSC and the learning rate per epoch.

    Headless (matplotlib's Agg canvas, no pyplot state). The PNG is 1500 × 420 pixels with the
    learning-rate panel, 1000 × 420 without; taller when a panel has more than :data:`CURVES_IN_PANEL` curves (their
    legend goes below the panel, and every curve has its own colour: :func:`line_colours`).

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    data = read_metrics_csv(metrics_csv)
    n = len(next(iter(data.values()))) if data else 0
    x = data.get("epoch") or [float(i + 1) for i in range(n)]
    drawable = [k for k, v in data.items() if any(val == val for val in v)]  # not all NaN
    panels = sort_columns(drawable)
    if not panels["losses"] and not panels["metrics"]:
        raise DataError(f"{metrics_csv}: no loss or metric columns to plot (columns: {list(data)})")
    shown = [p for p in ("losses", "metrics", "lr") if panels[p] or p != "lr"]
    # a panel with many curves (per-class metrics) has its legend below it: room for its rows
    below = max(
        [(len(panels[p]) + 1) // 2 for p in shown if len(panels[p]) > CURVES_IN_PANEL] or [0]
    )
    fig = Figure(figsize=(5.0 * len(shown), 4.2 + (0.3 + 0.14 * below if below else 0)), dpi=100)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    titles = {"losses": "training losses", "metrics": "validation metrics", "lr": "learning rate"}
    for ax, panel in zip(axes, shown):
        colours = line_colours(len(panels[panel]))
        for name, colour in zip(panels[panel], colours, strict=True):
            key = name.lower()
            style = ":" if re.search(r"mean_dice|mean_iou", key) else "-"
            if panel == "losses" and key.startswith("val"):
                style = "--"
            ax.plot(x, data[name], style, marker="." if n < 30 else None, label=name,
                    linewidth=1.2, color=colour)  # fmt: skip
        ax.set_title(titles[panel], fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panels[panel]:
            count = len(panels[panel])
            if count > CURVES_IN_PANEL:  # per-class curves: the legend goes below, off the lines
                ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
            else:
                many = count > 6
                ax.legend(fontsize=6 if many else 7, ncol=2 if many else 1, loc="best",
                          framealpha=0.7)  # fmt: skip
        if panel == "metrics":
            ax.set_ylim(0.0, 1.0)
        if panel == "lr" and all(v > 0 for name in panels["lr"] for v in data[name] if v == v):
            ax.set_yscale("log")
        if panel == "losses" and not panels["losses"]:
            ax.text(0.5, 0.5, "no loss columns", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return save_png(fig, out_png, dpi=100)
