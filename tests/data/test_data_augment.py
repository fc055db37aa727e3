"""The "paper" augmentation keeps masks binary and aligned with the image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.data.augment import build_augment
from medspikeformer.errors import ConfigError


def random_mask(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(1, 4)):
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        m[y0 : y0 + rng.integers(3, h // 2), x0 : x0 + rng.integers(3, w // 2)] = 1
    return m


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), h=st.integers(24, 64), w=st.integers(24, 64))
def test_paper_policy_binary_and_aligned(seed: int, h: int, w: int) -> None:
    """An image whose content *is* the mask stays identical to it wherever nothing was dropped.

    Nearest interpolation for the image makes the comparison exact; dropout holes are filled with 0
    in the image only, so the only allowed disagreement is image 0 where the mask is 1.
    """
    aug = build_augment("paper", interpolation=cv2.INTER_NEAREST, p=0.9)
    aug.set_random_seed(seed)
    mask = random_mask(seed, h, w)
    img = np.repeat((mask * 255)[..., None], 3, axis=2)
    out = aug(image=img, mask=mask)
    im, m = out["image"], out["mask"]
    assert m.shape == (h, w) and im.shape == (h, w, 3)
    assert set(np.unique(m).tolist()) <= {0, 1}
    assert (im[..., 0] == im[..., 2]).all()
    agree = (im[..., 0] > 127) == (m == 1)
    dropped = (im[..., 0] == 0) & (m == 1)
    assert (agree | dropped).all()
    assert dropped.sum() <= 8 * (max(1, round(h / 32)) * max(1, round(w / 32)) + h + w)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_paper_policy_bilinear_aligned_up_to_edges(seed: int) -> None:
    """With the default bilinear image interpolation, disagreement is confined to object edges."""
    aug = build_augment("paper", p=0.9)
    aug.set_random_seed(seed)
    mask = random_mask(seed, 48, 48)
    img = (mask * 255).astype(np.uint8)
    out = aug(image=img, mask=mask)
    im, m = out["image"], out["mask"]
    assert set(np.unique(m).tolist()) <= {0, 1}
    edge = cv2.dilate(m, np.ones((3, 3), np.uint8)) != cv2.erode(m, np.ones((3, 3), np.uint8))
    wrong = ((im > 127) != (m == 1)) & ~edge & ~((im == 0) & (m == 1))
    assert not wrong.any()


def test_policy_changes_something_and_none() -> None:
    assert build_augment("none") is None
    with pytest.raises(ConfigError, match="unknown augmentation policy"):
        build_augment("heavy")
    aug = build_augment("paper")
    aug.set_random_seed(0)
    mask = random_mask(1, 32, 32)
    changed = 0
    for _ in range(20):
        out = aug(image=mask * 255, mask=mask)
        changed += not np.array_equal(out["mask"], mask)
    assert 5 <= changed <= 19  # each transform p = 0.3: some but not all calls change the pair


def test_dataset_augmentation_reproducible_under_manual_seed() -> None:
    import torch

    from medspikeformer.data import build_dataset

    ds = build_dataset("synthetic", split="all", size=32, num_samples=4, augment="paper")
    torch.manual_seed(3)
    a = [ds[i]["mask"] for i in range(4) for _ in range(3)]
    ds2 = build_dataset("synthetic", split="all", size=32, num_samples=4, augment="paper")
    b = [ds2[i]["mask"] for i in range(4) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    for x in a:
        assert set(x.unique().tolist()) <= {0.0, 1.0}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), h=st.integers(24, 64), w=st.integers(24, 64))
def test_strong_policy_binary_and_aligned(seed: int, h: int, w: int) -> None:
    """The "strong" policy moves image and mask together (nearest image interpolation: exact).

    Its colour jitter changes image values but never where the image is 0 vs 255 by more than
    its ±20 % brightness/contrast, so thresholding at 128 recovers the mask except in dropout
    holes (image 0, mask 1).
    """
    aug = build_augment("strong", interpolation=cv2.INTER_NEAREST)
    aug.set_random_seed(seed)
    mask = random_mask(seed, h, w)
    img = np.repeat((mask * 255)[..., None], 3, axis=2).astype(np.uint8)
    out = aug(image=img, mask=mask)
    im, m = out["image"], out["mask"]
    assert m.shape == (h, w) and im.shape == (h, w, 3) and im.dtype == np.uint8
    assert set(np.unique(m).tolist()) <= {0, 1}
    fg = im.astype(int).max(axis=2) >= 128
    disagree = fg != m.astype(bool)
    assert not (disagree & ~(m.astype(bool) & ~fg)).any()


def test_strong_policy_changes_geometry_and_unknown_policy_lists_it() -> None:
    aug = build_augment("strong")
    aug.set_random_seed(3)
    mask = random_mask(3, 48, 48)
    moved = sum(
        not np.array_equal(aug(image=mask * 255, mask=mask)["mask"], mask) for _ in range(20)
    )
    assert moved >= 14  # p(no flip, no affine) = 0.5·0.5·0.3 ≈ 8 %
    with pytest.raises(ConfigError, match="strong"):
        build_augment("heavy")


@pytest.mark.parametrize("policy", ["paper", "strong"])
def test_augmentation_without_albumentations_says_what_to_do(
    policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "albumentations", None)  # not installed
    with pytest.raises(ConfigError, match=r"needs albumentations.*data\.augment=none"):
        build_augment(policy)
    assert build_augment("none") is None  # no augmentation needs no albumentations
