"""Probabilities of the training size brought back to an image's own size, in one place: what
``predict --mode resize`` writes and what ``evaluate`` scores at native resolution.

Probabilities are resized bilinearly (each class channel on its own), then thresholded or
argmaxed (:func:`~medspikeformer.inference.sliding.label_image`); resizing the probabilities
rather than the label map keeps outlines smooth instead of blocky when enlarging.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from medspikeformer.inference.sliding import label_image

__all__ = ["label_planes", "native_labels", "resize_probs", "truth_planes"]


def resize_probs(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``float [K, h, w]`` probabilities → ``float32 [K, H, W]`` (bilinear, per channel)."""
    import cv2

    height, width = size
    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape[1:] == (height, width):
        return probs.copy()
    return np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in probs])


def native_labels(
    probs: torch.Tensor | np.ndarray,
    size: tuple[int, int],
    activation: str,
    threshold: float,
    block: int,
) -> np.ndarray:
    """``[K, h, w]`` probabilities → the ``uint8 [H, W]`` mask / label map at ``size = (H, W)``
    (:func:`label_image`'s encoding: 0/255, class ids or region bits).

    Binary images of at most ``block²`` pixels resize the float map; larger ones, and K-class
    maps, resize an 8-bit copy (nothing full-size is float; the threshold then acts on ``p``
    rounded to 1/255).
    """
    import cv2

    height, width = size
    probs = np.asarray(probs.cpu() if isinstance(probs, torch.Tensor) else probs, np.float32)
    if probs.shape[0] > 1:
        p8 = np.rint(probs * 255.0).astype(np.uint8)
        full = np.stack(
            [cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in p8]
        )
        scores = torch.from_numpy(full.astype(np.float32) / 255.0)
        return label_image(scores, activation, threshold).numpy()
    if height * width <= block * block:
        full = resize_probs(probs, size)[0]
        return np.where(full >= threshold, 255, 0).astype(np.uint8)
    p8 = np.rint(probs[0] * 255.0).astype(np.uint8)
    full8 = cv2.resize(p8, (width, height), interpolation=cv2.INTER_LINEAR)
    fg = full8 >= math.ceil(threshold * 255.0 - 1e-6)
    full8[...] = fg
    full8 *= 255
    return full8


def label_planes(labels: np.ndarray, num_classes: int, activation: str) -> np.ndarray:
    """``uint8 [...]`` mask / label map (:func:`label_image`'s encoding) → ``float32 [K, ...]``
    hard "probabilities" in {0, 1} that score as that map: the binary foreground, the one-hot
    classes (softmax) or the region bits (multi-label)."""
    labels = np.asarray(labels)
    if num_classes == 1:
        return (labels > 0)[None].astype(np.float32)
    if activation == "softmax":
        return np.stack([labels == c for c in range(num_classes)]).astype(np.float32)
    return np.stack([(labels >> c) & 1 for c in range(num_classes)]).astype(np.float32)


def truth_planes(target: np.ndarray, k: int, activation: str) -> np.ndarray:
    """A target ``[Kt, *S]`` (binary ``[1, *S]``, class ids ``[1, *S]`` or regions ``[K, *S]``)
    → boolean planes ``[K, *S]``, one per class."""
    if k == 1:
        return target[:1] >= 0.5
    if activation == "softmax":
        return np.stack([np.rint(target[0]) == c for c in range(k)])
    return target >= 0.5
