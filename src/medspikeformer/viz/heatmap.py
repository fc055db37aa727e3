"""Attention heatmaps like the paper's Fig. 5.

For each encoder stage the attention block's output ``A_i ∈ R^{C_i×h_i×w_i}`` (mean over the T
timesteps, as ``model.forward_all(x).attention`` gives it) is reduced to one magnitude map

    ``M_i(y, x) = (1/C_i) Σ_c |A_i(c, y, x)|``,

min–max normalised to ``[0, 1]``, upsampled bilinearly to the image and drawn with the jet colour
map over the image. :func:`attention_figure` lays the stages out in a row for the spiking model
(SDSA) and, when given, a second row for the ANN teacher (softmax SA).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medspikeformer.viz.cells import save_png
from medspikeformer.viz.overlay import as_numpy, to_rgb_uint8

__all__ = [
    "attention_figure",
    "build_attention_figure",
    "channel_magnitude",
    "colorize",
    "heatmap_overlay",
    "normalize_map",
]

CELL_INCHES = 2.2
DPI = 100


def channel_magnitude(features: Any) -> np.ndarray:
    """Mean absolute activation over channels: ``[C,h,w]`` or ``[1,C,h,w]`` → ``h×w`` float32."""
    arr = as_numpy(features).astype(np.float32)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"expected one sample, got a batch of {arr.shape[0]}")
        arr = arr[0]
    if arr.ndim == 2:
        return np.abs(arr)
    if arr.ndim != 3:
        raise ValueError(f"expected [C,h,w] features, got shape {arr.shape}")
    return np.abs(arr).mean(axis=0)


def normalize_map(values: Any) -> np.ndarray:
    """Min–max normalise to ``[0, 1]`` (a constant map becomes all zeros)."""
    arr = as_numpy(values).astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(arr)
    return (arr - lo) / (hi - lo)


def colorize(values01: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Map ``[0, 1]`` values through a matplotlib colour map → ``H×W×3`` ``uint8``."""
    from matplotlib import colormaps

    rgba = colormaps[cmap](np.clip(values01, 0.0, 1.0))
    return np.rint(rgba[..., :3] * 255.0).astype(np.uint8)


def heatmap_overlay(
    image: Any, activation: Any, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Draw ``activation`` (``h×w``, any range) over ``image`` as a colour heatmap.

    The activation is min–max normalised, resized bilinearly to the image size and blended:
    ``out = (1 − α)·image + α·cmap(M)``.

    Returns:
        ``H×W×3`` ``uint8``.
    """
    import cv2

    rgb = to_rgb_uint8(image)
    act = normalize_map(np.squeeze(as_numpy(activation)))
    if act.ndim != 2:
        raise ValueError(f"activation must be 2-D, got shape {act.shape}")
    h, w = rgb.shape[:2]
    act = cv2.resize(act, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = colorize(act, cmap).astype(np.float32)
    out = (1.0 - alpha) * rgb.astype(np.float32) + alpha * heat
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def attention_figure(
    image: Any,
    student_maps: Sequence[Any],
    out_png: str | Path,
    teacher_maps: Sequence[Any] | None = None,
    student_label: str = "SNN (SDSA)",
    teacher_label: str = "ANN teacher (SA)",
    title: str | None = None,
    alpha: float = 0.5,
) -> Path:
    """Write the per-stage heatmap figure: column 0 the image, then one column per stage.

    Args:
        image: the picture the heatmaps are drawn over (``H×W(×C)`` or ``[C,H,W]``).
        student_maps: per stage ``[C_i,h_i,w_i]`` features (or ready ``h_i×w_i`` maps).
        teacher_maps: the same for the teacher (second row), or ``None``.

    Returns:
        The path written; the PNG is ``(1 + stages)·220`` × ``rows·220 (+30 with a title)`` pixels.
    """
    fig = build_attention_figure(
        image,
        student_maps,
        teacher_maps=teacher_maps,
        student_label=student_label,
        teacher_label=teacher_label,
        title=title,
        alpha=alpha,
    )
    return save_png(fig, out_png, dpi=DPI)


#: Label of the heatmaps' colour bar (each stage's map is min–max normalised on its own).
COLORBAR_LABEL = "relative |attention| (per stage: 0 = min, 1 = max)"


def build_attention_figure(
    image: Any,
    student_maps: Sequence[Any],
    teacher_maps: Sequence[Any] | None = None,
    student_label: str = "SNN (SDSA)",
    teacher_label: str = "ANN teacher (SA)",
    title: str | None = None,
    alpha: float = 0.5,
) -> Any:
    """The matplotlib ``Figure`` that :func:`attention_figure` saves, with a colour bar of the
    heatmap scale (:data:`COLORBAR_LABEL`) on the right."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    rgb = to_rgb_uint8(image)
    rows: list[tuple[str, Sequence[Any]]] = [(student_label, student_maps)]
    if teacher_maps is not None:
        if len(teacher_maps) != len(student_maps):
            raise ValueError(f"teacher has {len(teacher_maps)} stages, student {len(student_maps)}")
        rows.append((teacher_label, teacher_maps))
    n_stages = len(student_maps)
    if n_stages == 0:
        raise ValueError("no attention maps to draw")
    title_in = 0.3 if title else 0.0
    height = len(rows) * CELL_INCHES + title_in
    fig = Figure(figsize=((1 + n_stages) * CELL_INCHES, height), dpi=DPI)
    axes = fig.subplots(len(rows), 1 + n_stages, squeeze=False)
    top = 1.0 - (0.3 + title_in) / height
    fig.subplots_adjust(left=0.05, right=0.93, bottom=0.02, top=top, wspace=0.04)
    for r, (label, maps) in enumerate(rows):
        axes[r][0].imshow(rgb)
        axes[r][0].set_ylabel(label, fontsize=8)
        if r == 0:
            axes[r][0].set_title("image", fontsize=8)
        for s, fmap in enumerate(maps):
            mag = channel_magnitude(fmap)
            ax = axes[r][s + 1]
            ax.imshow(heatmap_overlay(rgb, mag, alpha=alpha))
            flat = " constant" if float(mag.max()) <= float(mag.min()) else ""
            ax.set_title(f"stage {s + 1} ({mag.shape[0]}×{mag.shape[1]}{flat})", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    cax = fig.add_axes((0.945, 0.06, 0.012, top - 0.12))
    bar = fig.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap="jet"), cax=cax)
    bar.set_label(COLORBAR_LABEL, fontsize=6)
    bar.ax.tick_params(labelsize=6)
    return fig
