"""File probing moved from ``inference.predict`` to ``data.probe``; the old names still resolve,
and ``resize_image`` is the image half of the datasets' ``resize_pair``."""

from __future__ import annotations

import numpy as np

from medspikeformer.data import probe, resize_image, resize_pair
from medspikeformer.inference import predict


def test_predict_reexports_the_probe() -> None:
    for name in ("IMAGE_SUFFIXES", "NIFTI_SUFFIXES", "expand_inputs", "output_stem", "probe_shape"):
        assert getattr(predict, name) is getattr(probe, name)
    assert probe.is_nifti(probe.Path("a.NII.gz")) and not probe.is_supported(probe.Path("a.txt"))


def test_resize_image_is_the_datasets_rule() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    mask = np.zeros((37, 53), dtype=np.uint8)
    for size in ((16, 16), (64, 80), (20, 90), (37, 53)):
        assert np.array_equal(resize_image(img, size), resize_pair(img, mask, size)[0])
    assert resize_image(img, (37, 53)) is img
