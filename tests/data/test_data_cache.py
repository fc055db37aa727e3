"""Decoded-array cache: hits after the first epoch, invalidation on change, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.data import build_dataset


def count_loads(ds, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    orig = ds.source.load

    def load(sample):
        calls.append(sample.id)
        return orig(sample)

    monkeypatch.setattr(ds.source, "load", load)
    return calls


def test_second_epoch_never_decodes(kvasir_root: Path, tmp_path: Path, monkeypatch) -> None:
    ds = build_dataset("kvasir", kvasir_root, split="all", size=32, cache_dir=tmp_path / "c")
    calls = count_loads(ds, monkeypatch)
    first = [ds[i] for i in range(len(ds))]
    assert len(calls) == len(ds)
    second = [ds[i] for i in range(len(ds))]
    assert len(calls) == len(ds)  # nothing decoded again
    for a, b in zip(first, second):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    files = list((tmp_path / "c" / "data" / "kvasir").iterdir())
    assert len(files) == len(ds) and all(f.suffix == ".npz" for f in files)  # no temp files left
    # a new dataset object (next run) reuses the same entries
    ds2 = build_dataset("kvasir", kvasir_root, split="all", size=32, cache_dir=tmp_path / "c")
    calls2 = count_loads(ds2, monkeypatch)
    ds2[0]
    assert calls2 == []


def test_changed_file_or_size_invalidates(kvasir_root: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "c"
    ds = build_dataset("kvasir", kvasir_root, split="all", size=32, cache_dir=cache)
    calls = count_loads(ds, monkeypatch)
    before = ds[0]
    mask_path = ds.samples[0].masks[0]
    full = np.full((40, 48), 255, np.uint8)
    Image.fromarray(full).save(mask_path, quality=95)
    st = mask_path.stat()
    os.utime(mask_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    after = ds[0]
    assert calls == [ds.samples[0].id] * 2
    assert before["mask"].mean() < 1.0 and after["mask"].mean() == 1.0
    # another size is another entry
    big = build_dataset("kvasir", kvasir_root, split="all", size=(24, 40), cache_dir=cache)
    big_calls = count_loads(big, monkeypatch)
    assert big[0]["image"].shape == (3, 24, 40) and len(big_calls) == 1


def test_corrupt_entry_is_a_miss(kvasir_root: Path, tmp_path: Path, monkeypatch) -> None:
    ds = build_dataset("kvasir", kvasir_root, split="all", size=32, cache_dir=tmp_path / "c")
    good = ds[1]
    entry = ds.cache.path(ds.source, ds.samples[1], ds.size)
    entry.write_bytes(b"garbage")
    calls = count_loads(ds, monkeypatch)
    assert torch.equal(ds[1]["image"], good["image"]) and len(calls) == 1
    with np.load(entry) as z:  # rewritten
        assert z["image"].shape == (32, 32, 3)


def test_cache_disabled(kvasir_root: Path, monkeypatch) -> None:
    ds = build_dataset("kvasir", kvasir_root, split="all", size=32, cache_dir=False)
    assert ds.cache is None
    calls = count_loads(ds, monkeypatch)
    ds[0], ds[0]
    assert len(calls) == 2
