"""Pictures: training curves, qualitative grids, mask overlays and attention heatmaps (PNG).

All drawing is headless (matplotlib's Agg canvas through ``matplotlib.figure.Figure``, no pyplot
global state), so it works on servers and in worker processes.
"""

from __future__ import annotations

from medspikeformer.viz.classes import (
    CLASS_COLORS,
    class_color,
    class_planes,
    colorize_labels,
    multiclass_grid,
    overlay_labels,
)
from medspikeformer.viz.curves import plot_training_curves
from medspikeformer.viz.grid import error_map, qualitative_grid
from medspikeformer.viz.heatmap import (
    attention_figure,
    channel_magnitude,
    heatmap_overlay,
    normalize_map,
)
from medspikeformer.viz.overlay import overlay, to_mask, to_rgb_uint8

__all__ = [
    "CLASS_COLORS",
    "attention_figure",
    "channel_magnitude",
    "class_color",
    "class_planes",
    "colorize_labels",
    "error_map",
    "heatmap_overlay",
    "multiclass_grid",
    "normalize_map",
    "overlay",
    "overlay_labels",
    "plot_training_curves",
    "qualitative_grid",
    "to_mask",
    "to_rgb_uint8",
]
