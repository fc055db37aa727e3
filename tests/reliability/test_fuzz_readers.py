"""Fuzzing the image and mask readers (issue 6, part 6).

Property: for any bytes on disk, ``read_image`` either returns a well-formed image (uint8,
``[H,W]`` or ``[H,W,3]``, H, W > 0) or raises ``DataError`` whose one-line message names the file;
``read_mask`` either returns a boolean ``[H,W]`` mask of the same size or raises ``DataError``.
Any other exception (``ValueError`` from numpy, ``struct.error``, ``IndexError``, ...) escaping is
a failure, and hypothesis shrinks it to a minimal input.

Inputs: mutated valid files (flip/insert/delete/overwrite/truncate bytes of PNG, JPEG, BMP and TIFF
seeds) and random bytes behind each format's magic number. The quick variants run
``QUICK_EXAMPLES`` cases each; the slow ones ``SLOW_EXAMPLES``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspikeformer.data.io import read_image, read_mask
from medspikeformer.errors import DataError

from .fuzzing import (
    CASE_TIME_LIMIT,
    MAGIC_PREFIXES,
    QUICK_EXAMPLES,
    SLOW_EXAMPLES,
    FuzzLog,
    hanging_tiff,
    image_seeds,
    mutate,
    time_limit,
)
from .fuzzing import mutations as mutation_lists

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", "")


def check_readers(path: Path, log: FuzzLog) -> None:
    """Run both readers on ``path`` and assert the property; log the outcome."""
    log.case()
    try:
        with time_limit(CASE_TIME_LIMIT, f"read_image({path.name}, {path.stat().st_size} bytes)"):
            img = read_image(path)
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message
        assert str(path) in message, message
        log.add("image:DataError")
    else:
        assert isinstance(img, np.ndarray) and img.dtype == np.uint8, (type(img), img.dtype)
        assert img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 3), img.shape
        assert img.shape[0] > 0 and img.shape[1] > 0, img.shape
        log.add("image:decoded")
    try:
        with time_limit(CASE_TIME_LIMIT, f"read_mask({path.name})"):
            mask = read_mask(path)
    except DataError as exc:
        assert str(path) in str(exc), str(exc)
        log.add("mask:DataError")
    else:
        assert isinstance(mask, np.ndarray) and mask.dtype == np.bool_, mask.dtype
        assert mask.ndim == 2 and mask.shape == img.shape[:2]
        log.add("mask:decoded")


def _fuzz_mutated(tmp_path: Path, examples: int, log: FuzzLog) -> None:
    seeds = image_seeds()
    counter = itertools.count()

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(name=st.sampled_from(sorted(seeds)), ops=mutation_lists)
    def run(name: str, ops: list) -> None:
        suffix, data = seeds[name]
        path = tmp_path / f"case{next(counter)}{suffix}"
        path.write_bytes(mutate(data, ops))
        try:
            check_readers(path, log)
        finally:
            path.unlink()

    run()


def _fuzz_random(tmp_path: Path, examples: int, log: FuzzLog) -> None:
    counter = itertools.count()

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        prefix=st.sampled_from(MAGIC_PREFIXES),
        body=st.binary(max_size=512),
        suffix=st.sampled_from(SUFFIXES),
    )
    def run(prefix: bytes, body: bytes, suffix: str) -> None:
        path = tmp_path / f"rand{next(counter)}{suffix}"
        path.write_bytes(prefix + body)
        try:
            check_readers(path, log)
        finally:
            path.unlink()

    run()


def test_seed_files_are_valid(tmp_path: Path) -> None:
    """Unmutated seeds decode (so mutations start from files the readers accept)."""
    for name, (suffix, data) in image_seeds().items():
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        img = read_image(path)
        assert img.shape[:2] == (20, 24), (name, img.shape)
        try:  # a photograph is no binary mask: refused naming its values, or read as one
            assert read_mask(path).shape == (20, 24)
        except DataError as exc:
            assert "mask is not binary" in str(exc), (name, exc)


def test_tiff_with_a_garbage_ifd_chain_is_refused_quickly(tmp_path: Path) -> None:
    """Regression (found by the slow fuzz run): a mutated TIFF on which reading every page of
    the series took minutes. Only the first page is read, so it is refused at once."""
    path = tmp_path / "garbage_ifds.tif"
    path.write_bytes(hanging_tiff())
    for reader in (read_image, read_mask):
        with time_limit(CASE_TIME_LIMIT, reader.__name__), pytest.raises(DataError) as info:
            reader(path)
        assert str(path) in str(info.value)


def test_fuzz_mutated_images_quick(tmp_path: Path, record_property: object) -> None:
    """Mutated valid PNG/JPEG/BMP/TIFF files: only DataError escapes (quick variant)."""
    log = FuzzLog("read_image+read_mask mutated (quick)")
    _fuzz_mutated(tmp_path, QUICK_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= QUICK_EXAMPLES // 2
    assert log.outcomes["image:DataError"] > 0, "no mutation was ever refused: fuzzer inert"


def test_fuzz_random_bytes_quick(tmp_path: Path, record_property: object) -> None:
    """Random bytes behind real magic numbers: only DataError escapes (quick variant)."""
    log = FuzzLog("read_image+read_mask random (quick)")
    _fuzz_random(tmp_path, QUICK_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= QUICK_EXAMPLES // 2
    assert log.outcomes["image:DataError"] > 0


@pytest.mark.slow
def test_fuzz_mutated_images_slow(tmp_path: Path, record_property: object) -> None:
    """As the quick variant, with ``SLOW_EXAMPLES`` cases."""
    log = FuzzLog("read_image+read_mask mutated (slow)")
    _fuzz_mutated(tmp_path, SLOW_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= SLOW_EXAMPLES // 2


@pytest.mark.slow
def test_fuzz_random_bytes_slow(tmp_path: Path, record_property: object) -> None:
    """As the quick variant, with ``SLOW_EXAMPLES`` cases."""
    log = FuzzLog("read_image+read_mask random (slow)")
    _fuzz_random(tmp_path, SLOW_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= SLOW_EXAMPLES // 2
