"""Post-processing of predicted masks: keep the largest connected component of each class.

An option of ``predict`` and ``evaluate`` (``--largest-component``), as nnU-Net's and MONAI's
``KeepLargestConnectedComponent``: for each foreground class (binary: the foreground; softmax:
classes 1…K−1; multi-label: each region) only its largest connected component is kept, the
other pixels of that class become background (region bit cleared). Connectivity is full
(8-neighbourhood in 2-D, 26 in 3-D), MONAI's default. Works on 2-D masks and 3-D volumes alike.
"""

from __future__ import annotations

import numpy as np

__all__ = ["keep_largest_component", "largest_component_labels"]


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """Boolean ``[...]`` mask → the same shape with only its largest connected component
    (ties: the first in scan order); an empty mask stays empty."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    components, count = ndimage.label(mask, structure=structure)
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(sizes.argmax())


def largest_component_labels(labels: np.ndarray, num_classes: int, activation: str) -> np.ndarray:
    """A mask / label map in :func:`~medspikeformer.inference.sliding.label_image`'s encoding
    (0/255, class ids, region bits; any number of dimensions) with every foreground class
    reduced to its largest connected component; same dtype and shape."""
    labels = np.asarray(labels)
    out = labels.copy()
    if num_classes == 1:
        out[(labels > 0) & ~keep_largest_component(labels > 0)] = 0
    elif activation == "softmax":
        for c in range(1, num_classes):
            present = labels == c
            out[present & ~keep_largest_component(present)] = 0
    else:
        for c in range(num_classes):
            bit = ((labels >> c) & 1).astype(bool)
            drop = bit & ~keep_largest_component(bit)
            out[drop] &= np.asarray(~np.uint8(1 << c), dtype=out.dtype)
    return out
