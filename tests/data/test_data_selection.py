"""Which images select the checkpoint: the carved validation part, the paper's protocol, folds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.data import build_dataset
from medspikeformer.data.base import Sample
from medspikeformer.data.selection import (
    check_validation_options,
    choose_validation,
    evaluation_note,
    protocol_line,
    selection_protocol,
)
from medspikeformer.data.splits import make_split
from medspikeformer.errors import ConfigError

SYN = {"size": 16, "num_samples": 40, "cache_dir": False}


def cases(n_cases: int, slices: int = 1) -> list[Sample]:
    """``n_cases`` groups of ``slices`` samples each (a volume's slices share a group)."""
    return [
        Sample(id=f"c{c:03d}_z{z}", files=(), group=f"c{c:03d}")
        for c in range(n_cases)
        for z in range(slices)
    ]


def group_of(samples: list[Sample]) -> dict[str, str]:
    return {s.id: s.group for s in samples}


def test_default_split_never_validates_on_test_images() -> None:
    ds = build_dataset("synthetic", split="val", **SYN)
    ids = ds.split_info["ids"]
    assert ids["val"] and set(ids["val"]).isdisjoint(ids["test"])
    assert set(ids["val"]).isdisjoint(ids["train"])
    assert [s.id for s in ds.samples] == ids["val"]
    # carved from the training images of the paper split; the test part is the paper's
    drawn, _ = make_split(ds.source.scan().samples, "paper", 41, "synthetic")
    assert ids["test"] == drawn["test"]
    assert sorted(ids["train"] + ids["val"]) == drawn["train"]
    assert ds.split_info["validation"]["protocol"] == "carved"


def test_the_carve_is_seeded_and_recorded(tmp_path: Path) -> None:
    a = build_dataset("synthetic", split="train", seed=3, **SYN)
    again = build_dataset("synthetic", split="train", seed=3, **SYN)
    record = a.split_info["validation"]
    assert again.split_info["ids"] == a.split_info["ids"]
    assert record["protocol"] == "carved" and record["seed"] == 3
    assert record["fraction"] == 0.1 and record["cases"] == a.split_info["ids"]["val"]
    assert len(record["cases"]) == 4  # ceil(0.1 × 32 training cases)
    # the carve follows the run seed, the test part the split's (same images drawn)
    samples = a.source.scan().samples
    drawn, _ = make_split(samples, "paper", 3, "synthetic")
    parts, rec = choose_validation(drawn, group_of_ids(samples), seed=4)
    assert parts["test"] == drawn["test"] and rec["cases"] != record["cases"]
    half, _ = choose_validation(drawn, group_of_ids(samples), val_fraction=0.5, seed=3)
    assert len(half["val"]) == 16
    # written into split.json, and read back as the same parts with the same record
    path = a.save_split(tmp_path / "split.json")
    saved = json.loads(path.read_text())
    assert saved["validation"] == record
    back = build_dataset("synthetic", split="val", split_spec=path, seed=9, **SYN)
    assert back.split_info["ids"] == a.split_info["ids"]
    assert back.split_info["validation"] == record


def group_of_ids(samples: list[Sample]) -> dict[str, str]:
    return {s.id: s.group or s.id for s in samples}


def test_the_carve_takes_whole_cases() -> None:
    ss = cases(10, slices=3)
    drawn, _ = make_split(ss, "paper", 0, "x")
    parts, record = choose_validation(drawn, group_of(ss), val_fraction=0.2, seed=0)
    by_part = {k: {i.split("_")[0] for i in v} for k, v in parts.items()}
    assert by_part["val"].isdisjoint(by_part["train"]) and len(parts["val"]) == 2 * 3
    assert sorted(record["cases"]) == sorted(by_part["val"])


def test_validation_test_keeps_the_old_parts_bit_for_bit(tmp_path: Path) -> None:
    ds = build_dataset("synthetic", split="val", validation="test", **SYN)
    drawn, _ = make_split(ds.source.scan().samples, "paper", 41, "synthetic")
    assert ds.split_info["ids"] == drawn and drawn["val"] == drawn["test"]
    assert [s.id for s in ds.samples] == drawn["test"]
    assert ds.split_info["validation"] == {"protocol": "test"}
    # a split.json written before the record existed reads as before, and says it selected on test
    old = {k: v for k, v in ds.split_info.items() if k != "validation"}
    path = tmp_path / "split.json"
    path.write_text(json.dumps(old))
    back = build_dataset("synthetic", split="val", split_spec=path, validation="test", **SYN)
    assert back.split_info["ids"] == drawn
    assert selection_protocol(old) == "test"
    assert "TEST part" in protocol_line(old)
    # a file that names its val part is used as written under either protocol, and the record
    # says which images select
    named = build_dataset("synthetic", split="val", split_spec=path, **SYN)
    assert named.split_info["ids"] == drawn
    assert named.split_info["validation"]["protocol"] == "test"
    # without val, the default carves from the file's training ids
    path.write_text(json.dumps({"train": drawn["train"], "test": drawn["test"]}))
    carved = build_dataset("synthetic", split="val", split_spec=path, **SYN)
    assert set(carved.split_info["ids"]["val"]) < set(drawn["train"])
    assert carved.split_info["validation"]["protocol"] == "carved"


def test_a_split_that_names_its_validation_part_keeps_it() -> None:
    ds = build_dataset("synthetic", split="val", split_spec="70/10/20", **SYN)
    drawn, _ = make_split(ds.source.scan().samples, "70/10/20", 41, "synthetic")
    assert ds.split_info["ids"] == drawn
    assert ds.split_info["validation"] == {"protocol": "split"}


def test_the_carve_is_stratified_where_the_layout_declares_strata() -> None:
    ss = cases(40)
    strata = {s.id: ("normal" if i < 30 else "malignant") for i, s in enumerate(ss)}
    parts = {"train": [s.id for s in ss], "val": [], "test": []}
    for seed in range(5):
        out, rec = choose_validation(
            parts, group_of(ss), val_fraction=0.2, seed=seed, stratum_of=strata,
            stratified_by="class folder",
        )  # fmt: skip
        kinds = sorted(strata[i] for i in out["val"])
        assert kinds.count("malignant") == 2 and kinds.count("normal") == 6
        assert rec["stratified_by"] == "class folder"
    out, rec = choose_validation(parts, group_of(ss), validation="train", folds=4, fold=1, seed=2,
                                 stratum_of=strata, stratified_by="class folder")  # fmt: skip
    assert sorted(strata[i] for i in out["val"]).count("malignant") in (2, 3)
    assert len(out["val"]) == 10


@settings(max_examples=60, deadline=None)
@given(
    n_cases=st.integers(2, 30),
    slices=st.integers(1, 3),
    folds=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    n_test=st.integers(0, 5),
    strata=st.lists(st.sampled_from(["a", "b", "c"]), min_size=30, max_size=30),
)
def test_folds_are_disjoint_cover_every_case_and_keep_the_test_part(
    n_cases: int, slices: int, folds: int, seed: int, n_test: int, strata: list[str]
) -> None:
    ss = cases(n_cases + n_test, slices)
    groups = group_of(ss)
    test = [s.id for s in ss if int(s.group[1:]) >= n_cases]
    pool = [s.id for s in ss if int(s.group[1:]) < n_cases]
    parts = {"train": pool, "val": test, "test": test}
    stratum = {s.id: strata[int(s.group[1:]) % 30] for s in ss}
    if n_cases < folds:
        with pytest.raises(ConfigError, match=r"data\.folds"):
            choose_validation(parts, groups, folds=folds, fold=0, seed=seed)
        return
    held: list[set[str]] = []
    for k in range(folds):
        out, record = choose_validation(
            parts, groups, folds=folds, fold=k, seed=seed, stratum_of=stratum
        )
        again, _ = choose_validation(
            parts, groups, folds=folds, fold=k, seed=seed, stratum_of=stratum
        )
        assert out == again  # deterministic for a seed
        assert out["test"] == sorted(test)
        assert sorted(out["train"] + out["val"]) == sorted(pool)
        val_cases = {groups[i] for i in out["val"]}
        assert val_cases.isdisjoint(groups[i] for i in out["train"])  # whole cases
        assert record["protocol"] == "fold" and record["cases"] == sorted(val_cases)
        held.append(val_cases)
    assert sum(len(h) for h in held) == n_cases  # disjoint …
    assert set().union(*held) == {groups[i] for i in pool}  # … and covering
    assert max(map(len, held)) - min(map(len, held)) <= 1
    for name in "abc":  # stratified: each stratum's cases spread over the folds evenly
        per_fold = [sum(strata[int(g[1:]) % 30] == name for g in h) for h in held]
        assert max(per_fold) - min(per_fold) <= 1


def test_folds_pool_the_named_validation_part() -> None:
    ss = cases(20)
    drawn, _ = make_split(ss, "70/10/20", 0, "x")
    out, _ = choose_validation(drawn, group_of(ss), folds=3, fold=0, seed=0)
    assert sorted(out["train"] + out["val"]) == sorted(drawn["train"] + drawn["val"])
    assert out["test"] == drawn["test"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("valid", 0.1, None, None), r"data.validation='valid': use one of train, test"),
        (("train", 0.0, None, None), r"data.val_fraction=0.0 must lie in \(0, 0.5\]"),
        (("train", 0.6, None, None), r"data.val_fraction=0.6"),
        (("train", 0.1, 5, None), r"data.folds and data.fold go together"),
        (("train", 0.1, 1, 0), r"data.folds=1 must be at least 2"),
        (("train", 0.1, 3, 3), r"data.fold=3 must lie in \[0, 3\)"),
        (("test", 0.1, 3, 0), r"data.validation=test contradict"),
    ],
)
def test_bad_options_are_one_line(options: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_validation_options(*options, where="data")


def test_one_training_case_cannot_be_carved_and_the_record_says_so() -> None:
    ss = cases(2, slices=2)
    parts = {"train": ["c000_z0", "c000_z1"], "val": ["c001_z0"], "test": ["c001_z0"]}
    out, record = choose_validation(parts, group_of(ss), seed=0)
    assert out == parts and record["protocol"] == "test"
    assert "too few to carve" in protocol_line({"validation": record})


def test_evaluation_note_warns_on_the_test_part_under_the_paper_protocol() -> None:
    note = evaluation_note("test", "test")
    assert note is not None and note.startswith("warning:") and "\n" not in note
    assert evaluation_note("carved", "test") is None
    assert "selected on" in (evaluation_note("carved", "val") or "")


def test_a_named_val_part_is_used_as_written_and_an_empty_one_names_none() -> None:
    ss = cases(10)
    ids = [s.id for s in ss]
    overlapping = {"train": ids[:6], "val": ids[6:8], "test": ids[7:]}
    out, record = choose_validation(overlapping, group_of(ss), seed=0, val_named=True)
    assert out["val"] == ids[6:8] and record["protocol"] == "test"  # val holds a test image
    empty = {"train": ids[:7], "val": [], "test": ids[7:]}
    out, record = choose_validation(empty, group_of(ss), seed=0, val_named=True)
    assert record["protocol"] == "carved" and set(out["val"]) < set(ids[:7])
