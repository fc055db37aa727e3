"""Padding, sliding windows and block tiling: exact against a pointwise model."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.data import to_model_input
from medspikeformer.inference.sliding import (
    block_grid,
    forward_probs,
    pad_to_multiple,
    predict_mask_tiled,
    sliding_window_probs,
)

from .helpers import SIZE, PointwiseModel


def _direct_mask(model, image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    with torch.no_grad():
        probs = torch.sigmoid(model.conv(to_model_input(image, 3).unsqueeze(0)))[0, 0].numpy()
    return np.where(probs >= threshold, 255, 0).astype(np.uint8)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 200),
    w=st.integers(1, 200),
    block=st.integers(1, 90),
    hy=st.integers(0, 40),
    hx=st.integers(0, 40),
)
def test_block_grid_tiles_exactly_once(h, w, block, hy, hx):
    cover = np.zeros((h, w), dtype=np.int32)
    for core, outer, inner in block_grid(h, w, block, (hy, hx)):
        cover[core] += 1
        # the core sits inside the outer crop at `inner`
        outer_idx = np.arange(h * w).reshape(h, w)[outer]
        np.testing.assert_array_equal(outer_idx[inner], np.arange(h * w).reshape(h, w)[core])
        assert core[0].start - outer[0].start == min(hy, core[0].start)
        assert outer[1].stop - core[1].stop == min(hx, w - core[1].stop)
    assert (cover == 1).all()


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), divisor=st.sampled_from([1, 4, 8]))
def test_forward_probs_pads_and_crops(h, w, divisor):
    model = PointwiseModel(size_divisor=divisor).eval()
    x = torch.rand(2, 3, h, w)
    padded, (oh, ow) = pad_to_multiple(x, divisor)
    assert (oh, ow) == (h, w)
    assert padded.shape[-2] % divisor == 0 and padded.shape[-1] % divisor == 0
    with torch.no_grad():
        got = forward_probs(model, x)
        expected = torch.sigmoid(model.conv(x))
    assert got.shape == (2, 1, h, w)
    torch.testing.assert_close(got, expected)


def test_sliding_window_of_a_pointwise_model_is_exact(pointwise):
    x = torch.rand(1, 3, 75, 101)
    with torch.no_grad():
        got = sliding_window_probs(pointwise, x, roi=(32, 32), overlap=0.5)
        expected = torch.sigmoid(pointwise.conv(x))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@settings(max_examples=8, deadline=None)
@given(
    h=st.integers(20, 140),
    w=st.integers(20, 140),
    block=st.sampled_from([32, 48, 64]),
    seed=st.integers(0, 1000),
)
def test_tiled_prediction_equals_direct_for_a_pointwise_model(h, w, block, seed):
    model = PointwiseModel().eval()
    image = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    with torch.inference_mode():
        got = predict_mask_tiled(
            model, image, lambda a: to_model_input(a, 3), (16, 16), block=block, overlap=0.25
        )
    expected = _direct_mask(model, image)
    assert got.shape == (h, w) and got.dtype == np.uint8
    assert set(np.unique(got)) <= {0, 255}
    # probabilities equal to float rounding; a pixel within 1e-6 of the threshold may flip
    with torch.no_grad():
        probs = torch.sigmoid(model.conv(to_model_input(image, 3).unsqueeze(0)))[0, 0].numpy()
    ambiguous = np.abs(probs - 0.5) < 1e-5
    assert (got[~ambiguous] == expected[~ambiguous]).all()


def test_one_window_equals_the_direct_forward(tiny_model):
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    x = to_model_input(image, 3).unsqueeze(0)
    with torch.inference_mode():
        direct = torch.sigmoid(tiny_model(x))
        sliding = sliding_window_probs(tiny_model, x, roi=(SIZE, SIZE))
    torch.testing.assert_close(sliding, direct, rtol=1e-5, atol=1e-6)


def test_tiled_memory_does_not_scale_with_blocks(tiny_model):
    """Blocks much smaller than the image still give a mask of the image's size."""
    image = np.random.default_rng(1).integers(0, 256, (150, 170, 3), dtype=np.uint8)
    done: list[int] = []
    with torch.inference_mode():
        mask = predict_mask_tiled(
            tiny_model,
            image,
            lambda a: to_model_input(a, 3),
            (SIZE, SIZE),
            block=64,
            progress=done.append,
        )
    assert mask.shape == (150, 170)
    assert sum(done) == 150 * 170 and len(done) == 3 * 3
