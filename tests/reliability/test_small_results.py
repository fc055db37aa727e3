"""Smaller silent results and late crashes (issue 27, E and F): duplicate YAML keys, a split file
that trains on its test ids, a cache entry that is stale or damaged, a report with non-UTF-8
sample ids."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medspikeformer.errors import ConfigError, DataError


def _folder(root: Path, n: int = 3) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((16, 16, 3), 30 * i, np.uint8)).save(root / "images" / f"c{i}.png")
        m = np.zeros((16, 16), np.uint8)
        m[2:6, 2:6] = 255
        Image.fromarray(m).save(root / "masks" / f"c{i}.png")
    return root


def test_yaml_duplicate_keys_are_refused(tmp_path: Path) -> None:
    from medspikeformer.engine.config import read_yaml

    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  epochs: 100\n  lr: 0.1\n  epochs: 5\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml.*duplicate key 'epochs'"):
        read_yaml(path)


def test_split_file_with_an_id_in_train_and_test_is_refused(tmp_path: Path) -> None:
    from medspikeformer.data import build_dataset

    data = _folder(tmp_path / "ds")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["c0", "c1"], "test": ["c1", "c2"]}))
    with pytest.raises(DataError, match=r"split\.json: 1 id\(s\) in both 'train' and 'test'.*'c1'"):
        build_dataset(
            "folder", root=data, split="train", size=16, split_spec=str(split), cache_dir=False
        )


def test_a_split_file_may_overlap_when_it_says_so(tmp_path: Path) -> None:
    """A fitting check trains and scores on the same images on purpose: ``allow_overlap``."""
    from medspikeformer.data import build_dataset

    data = _folder(tmp_path / "ds")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"allow_overlap": True, "train": ["c0", "c1"], "test": ["c1"]}))
    ds = build_dataset(
        "folder", root=data, split="test", size=16, split_spec=str(split), cache_dir=False
    )
    assert [s.id for s in ds.samples] == ["c1"]
    split.write_text(json.dumps({"allow_overlap": "yes", "train": ["c1"], "test": ["c1"]}))
    with pytest.raises(DataError, match="allow_overlap"):
        build_dataset(
            "folder", root=data, split="test", size=16, split_spec=str(split), cache_dir=False
        )


def test_a_replaced_file_with_the_same_size_and_mtime_misses_the_cache(tmp_path: Path) -> None:
    from medspikeformer.data import build_dataset

    data = _folder(tmp_path / "ds", n=2)
    mask = data / "masks" / "c0.png"
    mask.unlink()
    mask = mask.with_suffix(".bmp")  # a BMP's size does not depend on its content
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(mask)
    cache = tmp_path / "cache"
    ds = build_dataset("folder", root=data, split="all", size=16, cache_dir=cache)
    index = [s.id for s in ds.samples].index("c0")
    assert not ds.load_arrays(index)[1].any()
    st = mask.stat()
    other = np.zeros((16, 16), np.uint8)
    other[8:14, 8:14] = 255
    Image.fromarray(other).save(mask)
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert mask.stat().st_size == st.st_size and mask.stat().st_mtime_ns == st.st_mtime_ns
    ds2 = build_dataset("folder", root=data, split="all", size=16, cache_dir=cache)
    assert ds2.load_arrays(index)[1].any(), "the stale cached mask was served"


def test_a_damaged_cache_entry_is_decoded_again(tmp_path: Path) -> None:
    from medspikeformer.data import build_dataset

    data = _folder(tmp_path / "ds", n=2)
    cache = tmp_path / "cache"
    ds = build_dataset("folder", root=data, split="all", size=16, cache_dir=cache)
    good = [a.copy() for a in ds.load_arrays(0)]
    entry = ds.cache.path(ds.source, ds.samples[0], ds.size)
    np.savez(entry, image=np.zeros((3, 5), np.float64), mask=np.zeros((7,), np.uint8))
    img, mask = ds.load_arrays(0)
    np.testing.assert_array_equal(img, good[0])
    np.testing.assert_array_equal(mask, good[1])


def test_reports_with_non_utf8_sample_ids_are_written(tmp_path: Path) -> None:
    from medspikeformer.outputs import atomic_write_text

    name = os.fsdecode(b"case-\xff\xfe")  # a file name that is not UTF-8
    path = atomic_write_text(tmp_path / "per_image.csv", f"id,dice\n{name},0.5\n")
    assert path.read_bytes() == b"id,dice\ncase-\\udcff\\udcfe,0.5\n"


def test_a_terminated_program_leaves_no_temporary_file(tmp_path: Path) -> None:
    """SIGTERM in the middle of a write (``kill``, a scheduler's time limit) unwinds like Ctrl-C:
    the half-written temporary file beside the target is removed, the target never appears."""
    import subprocess
    import sys

    from medspikeformer.cli import SIGTERM_EXIT

    script = (
        "import os, signal, sys, time\n"
        "from medspikeformer.cli import exit_on_sigterm\n"
        "from medspikeformer.outputs import atomic_path\n"
        "exit_on_sigterm()\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
    )
    target = tmp_path / "out" / "mask.png"
    proc = subprocess.run([sys.executable, "-c", script, str(target)], timeout=60)
    assert proc.returncode == SIGTERM_EXIT
    assert list((tmp_path / "out").iterdir()) == []


def test_data_check_reports_the_duplicate_ids_that_build_dataset_refuses(tmp_path: Path) -> None:
    from medspikeformer.data import build_dataset
    from medspikeformer.data.check import check_dataset

    data = _folder(tmp_path / "ds")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(data / "images" / "c0.jpg")
    with pytest.raises(DataError, match="duplicate sample id 'c0'"):
        build_dataset("folder", root=data, split="all", size=16, cache_dir=False)
    errors = check_dataset("folder", data, progress=False).errors
    assert any("duplicate sample id 'c0'" in e and "c0.jpg" in e for e in errors), errors
