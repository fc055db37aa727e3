"""Training-time augmentation with albumentations.

``"paper"`` is the authors' policy: ``Rotate(limit=35)``, ``HorizontalFlip``, ``VerticalFlip`` and
``CoarseDropout``, each with p = 0.3. Details fixed here (the authors used albumentations 1.x
defaults, which we keep where 2.x changed them):

* Rotate: image bilinear, mask nearest (masks stay in {0,1}); border ``BORDER_REFLECT_101`` for both
  image and mask, so the reflected content stays aligned with its reflected mask.
* CoarseDropout: 8 holes of 1/32 of the image side (8×8 px at 256×256, the 1.x default), filled with
  0 in the **image only**; the mask is left unchanged (the object is still there, only hidden).

``"strong"`` (ours, for small training sets and long CPU recipes; docs/results.md measures it):
horizontal and vertical flips with p = 0.5, an affine map (scale 0.75–1.25, shift ±10 %, rotation
±35°, p = 0.7; image bilinear, mask nearest, reflected borders), brightness/contrast ±0.2 and
hue/saturation jitter (p = 0.5, image only) and the paper's CoarseDropout (p = 0.3). Every
step keeps the image shape (no 90° rotation, which would swap H and W of a non-square image).

``"none"`` returns ``None`` (no augmentation).
"""

from __future__ import annotations

import cv2

from medspikeformer.errors import ConfigError

POLICIES = ("none", "paper", "strong")


def build_augment(policy: str = "none", interpolation: int = cv2.INTER_LINEAR, p: float = 0.3):
    """An ``albumentations.Compose`` taking ``image`` (uint8 HWC/HW) and ``mask`` (uint8 {0,1}),
    or ``None`` for ``"none"``. ``interpolation`` is the image interpolation of the rotation."""
    if policy in (None, "none"):
        return None
    if policy not in POLICIES:
        raise ConfigError(f"unknown augmentation policy {policy!r} (known: {', '.join(POLICIES)})")
    try:
        import albumentations as A
    except ImportError:
        raise ConfigError(
            f"augmentation policy {policy!r} needs albumentations, which is not installed: "
            "install it (pip install albumentations, or offline from `make wheelhouse`, see "
            "docs/performance.md) or train without augmentation (data.augment=none)"
        ) from None

    hole = 1.0 / 32.0
    if policy == "strong":
        return _strong(A, interpolation, hole)
    return A.Compose(
        [
            A.Rotate(
                limit=35,
                interpolation=interpolation,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101,
                p=p,
            ),
            A.HorizontalFlip(p=p),
            A.VerticalFlip(p=p),
            _dropout(A, hole, p),
        ]
    )


def _strong(A, interpolation: int, hole: float):
    """The ``"strong"`` policy (see the module docstring)."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(
                scale=(0.75, 1.25),
                translate_percent=(-0.1, 0.1),
                rotate=(-35, 35),
                interpolation=interpolation,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.7,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=0, p=0.5),
            _dropout(A, hole, 0.3),
        ]
    )


def _dropout(A, hole: float, p: float):
    """The paper's CoarseDropout: 8 holes of ``hole`` × the image side, image only, filled with 0."""
    return A.CoarseDropout(
        num_holes_range=(8, 8),
        hole_height_range=(hole, hole),
        hole_width_range=(hole, hole),
        fill=0,
        fill_mask=None,
        p=p,
    )
