"""Display helpers: turn model inputs/outputs into RGB ``uint8`` pictures and draw mask overlays.

Everything here works on ``numpy`` arrays (``H×W`` or ``H×W×C``) or on tensors as the datasets give
them (``[C, H, W]`` float, ``[1, H, W]`` masks); all outputs are ``H×W×3`` ``uint8`` arrays that can
be written with Pillow or shown with matplotlib.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MASK_COLOR", "as_numpy", "overlay", "to_mask", "to_rgb_uint8"]

RGB = tuple[int, int, int]


def as_numpy(array: Any) -> np.ndarray:
    """A tensor (any device) or array-like → ``np.ndarray`` (no copy for numpy input)."""
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array)


def to_rgb_uint8(image: Any) -> np.ndarray:
    """Any displayable image → ``H×W×3`` ``uint8``.

    Accepts ``H×W``, ``H×W×{1,3,4}`` (channels last) or ``{1,3}×H×W`` (channels first, as model
    inputs are). Where the layout is ambiguous (e.g. ``3×4×4``), tensors are read channels first
    (the datasets' layout) and numpy arrays channels last (``read_image``'s). ``uint8`` input is used as is; float input already in ``[0, 1]`` is scaled by 255;
    any other float input (e.g. mean/std-normalised model input) is min–max stretched to ``[0, 255]``
    for display.
    """
    channels_first = hasattr(image, "detach")
    arr = as_numpy(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if (
        arr.ndim == 3
        and arr.shape[0] in (1, 3)
        and (channels_first or arr.shape[-1] not in (1, 3, 4))
    ):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"cannot display an array of shape {arr.shape} as an image")
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo < 0.0 or hi > 1.0:
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return np.ascontiguousarray(arr)


def to_mask(mask: Any, threshold: float = 0.5) -> np.ndarray:
    """A mask or probability map (``H×W``, ``1×H×W``, ``1×1×H×W``, ``H×W×1``; values in {0,1},
    [0,1] or {0,255}) → boolean ``H×W`` (``value >= threshold``, as the metrics threshold). ``uint8`` masks count
    as foreground where > 127."""
    arr = as_numpy(mask)
    while arr.ndim > 2 and arr.shape[0] == 1:  # [1,H,W], [1,1,H,W]
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:  # [H,W,1]
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"a mask must be H×W (or 1×H×W, H×W×1), got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype == np.uint8:
        return arr > 127
    return arr.astype(np.float32) >= threshold


#: Mask colour of every overlay (predict's ``_overlay.png``, ``data show``): green, which stands out
#: on the red/pink tissue of endoscopy, dermoscopy and H&E images where red would not.
MASK_COLOR: RGB = (0, 255, 0)


def overlay(
    image: Any,
    mask: Any,
    color: RGB = MASK_COLOR,
    alpha: float = 0.4,
    contour: bool = True,
    contour_color: RGB | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Blend a binary ``mask`` over ``image`` and (optionally) draw its outline.

    ``out = (1 − α)·image + α·color`` on foreground pixels, ``image`` elsewhere; the outline
    (OpenCV contours of the mask) is drawn on top in ``contour_color`` (default: ``color``).
    The mask must have the image's height and width.

    Returns:
        ``H×W×3`` ``uint8``.
    """
    import cv2

    rgb = to_rgb_uint8(image)
    fg = to_mask(mask)
    if fg.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {fg.shape} differs from image shape {rgb.shape[:2]}")
    out = rgb.astype(np.float32)
    col = np.asarray(color, dtype=np.float32)
    out[fg] = (1.0 - alpha) * out[fg] + alpha * col
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if contour and fg.any():
        if thickness is None:
            thickness = max(1, max(fg.shape) // 800)
        contours, _ = cv2.findContours(
            fg.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        edge = tuple(int(c) for c in (contour_color or color))
        out = np.ascontiguousarray(out)
        cv2.drawContours(out, contours, -1, edge, thickness)
    return out
