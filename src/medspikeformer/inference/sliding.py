"""Whole-image, sliding-window and block-tiled inference on probability maps.

Three levels, each built on the one before:

1. :func:`forward_probs` — one batch through the model: pad H, W up to the model's
   ``size_divisor`` (zeros, i.e. black in the ``v/255`` normalisation), run the eval forward,
   crop back, the model's activation (sigmoid; softmax over the K channels of a multi-class
   model). Optional flip test-time augmentation (TTA) averages the probabilities of
   the identity, the horizontal flip and the vertical flip (each flipped back):
   ``p = (σ(f(x)) + F_h σ(f(F_h x)) + F_v σ(f(F_v x))) / 3``.
2. :func:`sliding_window_probs` — MONAI's ``sliding_window_inference`` with windows of the training
   size (``roi``), configurable overlap and Gaussian blending of the window *probabilities*;
   images smaller than the window are padded by MONAI and cropped back.
3. :func:`predict_mask_tiled` — bounded memory for huge images: the image (``uint8``) is cut into
   blocks of ``block`` × ``block`` pixels; each block is extended by a halo of one window on every
   side (clipped at the image border), converted to float, run through (2), and only its core is
   thresholded and written into the ``uint8`` output mask. Float buffers therefore never exceed one
   block with halo, whatever the image size. Every core pixel is covered by windows lying fully
   inside its block + halo, so seams only differ from a whole-image sliding window by where the
   windows happen to start (and not at all for a pointwise model, which the tests use to check the
   indexing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medspikeformer.models.base import SegmentationModel
from medspikeformer.models.output import to_probabilities

__all__ = [
    "activation_of",
    "block_grid",
    "forward_probs",
    "label_image",
    "logits_of",
    "pad_to_multiple",
    "predict_mask_tiled",
    "sliding_window_probs",
]


def logits_of(output: Any) -> torch.Tensor:
    """The logits tensor of an output that may be wrapped (a tensor, or an object/dict with
    ``logits``); a :class:`SegmentationModel`'s ``forward`` needs none of this."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["logits"]
    return output.logits


def pad_to_multiple(x: torch.Tensor, divisor: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad ``x [B,C,H,W]`` at the bottom/right so H and W are multiples of ``divisor``.

    Returns the padded tensor and the original ``(H, W)`` to crop back to.
    """
    h, w = x.shape[-2:]
    divisor = max(1, int(divisor))
    ph, pw = (-h) % divisor, (-w) % divisor
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)


def _probs_once(model: SegmentationModel, x: torch.Tensor) -> torch.Tensor:
    members = getattr(model, "ensemble_members", None)
    if members is not None:  # an ensemble: the mean of its members' probabilities
        return torch.stack([_probs_once(m, x) for m in members]).mean(0)
    xp, (h, w) = pad_to_multiple(x, model.size_divisor)
    logits = model(xp)  # the contract: logits [B, K, H, W] in every mode
    return to_probabilities(logits[..., :h, :w].float(), activation_of(model))


def activation_of(model: nn.Module) -> str:
    """The model's activation (``sigmoid``/``softmax``); a bare module (an exported graph's
    wrapper, a test double) is taken as a binary sigmoid model."""
    if isinstance(model, SegmentationModel) or hasattr(model, "ensemble_members"):
        return model.activation
    return "sigmoid"


def label_image(probs: torch.Tensor, activation: str, threshold: float = 0.5) -> torch.Tensor:
    """``[K, H, W]`` probabilities → ``uint8 [H, W]``: binary → 0/255 (``prob >= threshold``);
    softmax → class ids (argmax); multi-label → bit ``c`` set where region ``c`` is on
    (``prob >= threshold``; up to 8 regions)."""
    if probs.shape[0] == 1:
        return torch.where(probs[0] >= threshold, 255, 0).to(torch.uint8)
    if activation == "softmax":
        return probs.argmax(0).to(torch.uint8)
    if probs.shape[0] > 8:
        raise ValueError(f"a multi-label picture holds at most 8 regions, got {probs.shape[0]}")
    bits = (2 ** torch.arange(probs.shape[0], device=probs.device)).view(-1, 1, 1)
    return ((probs >= threshold).long() * bits).sum(0).to(torch.uint8)


def forward_probs(model: nn.Module, x: torch.Tensor, tta_flip: bool = False) -> torch.Tensor:
    """Probabilities ``[B,K,H,W]`` of ``x [B,C,H,W]`` (any H, W; see module doc).

    The model must already be in eval mode; call under ``torch.inference_mode()``.
    """
    probs = _probs_once(model, x)
    if tta_flip:
        probs = probs + _probs_once(model, x.flip(-1)).flip(-1)
        probs = probs + _probs_once(model, x.flip(-2)).flip(-2)
        probs = probs / 3.0
    return probs


def sliding_window_probs(
    model: nn.Module,
    x: torch.Tensor,
    roi: tuple[int, int],
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    tta_flip: bool = False,
    blend: str = "gaussian",
) -> torch.Tensor:
    """Sliding-window probabilities ``[B,K,H,W]`` of ``x [B,C,H,W]`` with windows of size ``roi``.

    MONAI ``sliding_window_inference`` (``mode=blend``, ``sigma_scale=0.125``); each window goes
    through :func:`forward_probs`, so windows are also padded to the model's ``size_divisor``.
    """
    from monai.inferers import sliding_window_inference

    def predictor(window: torch.Tensor) -> torch.Tensor:
        return forward_probs(model, window, tta_flip=tta_flip)

    out = sliding_window_inference(
        x,
        roi_size=tuple(int(r) for r in roi),
        sw_batch_size=int(sw_batch_size),
        predictor=predictor,
        overlap=float(overlap),
        mode=blend,
        padding_mode="constant",
        cval=0.0,
    )
    return torch.as_tensor(out).float()


def block_grid(
    height: int, width: int, block: int, halo: tuple[int, int]
) -> Iterator[tuple[tuple[slice, slice], tuple[slice, slice], tuple[slice, slice]]]:
    """Cut ``height × width`` into ``block``-sized cores with a ``halo`` (rows, cols) around each.

    Yields ``(core, outer, inner)``: ``core`` the slices of the image this block writes, ``outer``
    the slices of the image read (core + halo, clipped to the image), and ``inner`` the slices of
    the core inside the outer crop. The cores tile the image exactly once.
    """
    hy, hx = halo
    for y0 in range(0, height, block):
        y1 = min(y0 + block, height)
        oy0, oy1 = max(0, y0 - hy), min(height, y1 + hy)
        for x0 in range(0, width, block):
            x1 = min(x0 + block, width)
            ox0, ox1 = max(0, x0 - hx), min(width, x1 + hx)
            yield (
                (slice(y0, y1), slice(x0, x1)),
                (slice(oy0, oy1), slice(ox0, ox1)),
                (slice(y0 - oy0, y1 - oy0), slice(x0 - ox0, x1 - ox0)),
            )


def predict_mask_tiled(
    model: nn.Module,
    image: np.ndarray,
    to_input: Callable[[np.ndarray], torch.Tensor],
    roi: tuple[int, int],
    threshold: float = 0.5,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    tta_flip: bool = False,
    block: int = 2048,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Binary mask (``uint8`` 0/255, ``H×W``) of a ``uint8`` image of any size, in bounded memory;
    for a K-class model the class-id map, for a multi-label one the region bits
    (:func:`label_image`).

    Args:
        image: ``H×W`` or ``H×W×C`` ``uint8`` (what ``read_image`` returns).
        to_input: ``uint8`` crop → model input ``[C,h,w]`` (the training normalisation).
        roi: sliding window size (the training size).
        block: core block side in pixels; the float working set is about
            ``(block + 2·roi)² · (C + 3) · 4`` bytes.
        progress: called with the number of pixels finished after each block.
    """
    height, width = image.shape[:2]
    block = max(int(block), max(roi))
    out = np.zeros((height, width), dtype=np.uint8)
    for core, outer, inner in block_grid(height, width, block, (int(roi[0]), int(roi[1]))):
        crop = image[outer]
        x = to_input(np.ascontiguousarray(crop)).unsqueeze(0).to(device)
        probs = sliding_window_probs(
            model, x, roi, overlap=overlap, sw_batch_size=sw_batch_size, tta_flip=tta_flip
        )
        core_probs = probs[0][(slice(None), *inner)]
        out[core] = label_image(core_probs, activation_of(model), threshold).cpu().numpy()
        del x, probs
        if progress is not None:
            progress((core[0].stop - core[0].start) * (core[1].stop - core[1].start))
    return out
