"""Fuzzing the checkpoint loader (issue 16): byte flips and truncations of a real checkpoint.

Property: for any mutation of a valid ``best.pt``, ``load_model`` either raises a one-line
``CheckpointError`` naming the file, or returns a model whose every state-dict tensor is
bit-identical to the original's — a damaged checkpoint never loads as other weights (before the
integrity check, a flipped bit inside tensor data loaded silently).

Mutations: single and multiple bit flips anywhere in the file (uniform over its length, so most
land in tensor data), byte overwrites, deletions, insertions and truncations.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspikeformer.engine.checkpoint import build_payload, load_model, save_checkpoint
from medspikeformer.errors import CheckpointError

from .fuzzing import CASE_TIME_LIMIT, QUICK_EXAMPLES, SLOW_EXAMPLES, FuzzLog, mutate, time_limit
from .helpers import tiny_model


def _seed_checkpoint() -> tuple[bytes, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = tiny_model()
    buffer_path = io.BytesIO()
    payload = build_payload(
        model, epoch=3, train_config={"data": {"dataset": "synthetic", "size": 32}}
    )
    torch.save(payload, buffer_path)
    return buffer_path.getvalue(), {k: v.clone() for k, v in payload["state_dict"].items()}


SEED, SEED_STATE = _seed_checkpoint()


def _ops(size: int) -> st.SearchStrategy:
    pos = st.integers(0, size - 1)
    one = st.one_of(
        st.tuples(st.just("flip"), pos, st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128])),
        st.tuples(st.just("flip"), pos, st.integers(1, 255)),
        st.tuples(st.just("overwrite"), pos, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("delete"), pos, st.integers(1, 64)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("truncate"), pos, st.none()),
    )
    return st.lists(one, min_size=1, max_size=4)


def check_checkpoint(path: Path, log: FuzzLog) -> str:
    """``load_model`` on ``path``; assert the property; log and return the outcome."""
    log.case()
    try:
        with time_limit(CASE_TIME_LIMIT, str(path)):
            model, _ = load_model(path)
    except CheckpointError as exc:
        message = str(exc).strip()
        assert "\n" not in message and str(path) in message, message
        log.add("CheckpointError")
        return "CheckpointError"
    state = model.state_dict()
    assert state.keys() == SEED_STATE.keys(), path
    for key, value in SEED_STATE.items():
        got = state[key]
        assert got.dtype == value.dtype and got.shape == value.shape, key
        assert torch.equal(
            got.reshape(-1).view(torch.uint8), value.reshape(-1).view(torch.uint8)
        ), f"{path}: {key} loaded with other values than were saved"
    log.add("loaded identical")
    return "loaded identical"


def _fuzz(tmp_path: Path, examples: int, log: FuzzLog) -> None:
    counter = itertools.count()

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(ops=_ops(len(SEED)))
    def run(ops: list) -> None:
        path = tmp_path / f"case{next(counter)}.pt"
        path.write_bytes(mutate(SEED, ops))
        try:
            check_checkpoint(path, log)
        finally:
            path.unlink()

    run()


def test_seed_checkpoint_loads_identically(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "seed.pt", torch.load(io.BytesIO(SEED), weights_only=True))
    log = FuzzLog("seed")
    assert check_checkpoint(path, log) == "loaded identical"


def test_every_single_bit_flip_in_tensor_data_is_refused(tmp_path: Path) -> None:
    """Deterministic sweep: one flipped bit in every 97th byte of the file."""
    log = FuzzLog("sweep")
    for pos in range(0, len(SEED), 97):
        path = tmp_path / "flip.pt"
        path.write_bytes(mutate(SEED, [("flip", pos, 1 << (pos % 8))]))
        check_checkpoint(path, log)
    assert log.outcomes["CheckpointError"] > 0


def test_flips_in_the_zip_end_records_are_refused(tmp_path: Path) -> None:
    """Every bit of the last 64 bytes (ZIP64 end record, locator, end of central directory): a
    damaged "number of disks" field made ``zipfile.is_zipfile`` raise past the loader."""
    log = FuzzLog("end records")
    path = tmp_path / "end.pt"
    for pos in range(len(SEED) - 64, len(SEED)):
        for bit in range(8):
            path.write_bytes(mutate(SEED, [("flip", pos, 1 << bit)]))
            check_checkpoint(path, log)
    assert log.outcomes["CheckpointError"] > 0


def test_fuzz_checkpoint_loader_quick(tmp_path: Path, record_property: object) -> None:
    """Flipped/truncated checkpoints: CheckpointError or identical weights (quick variant)."""
    log = FuzzLog("checkpoint loader (quick)")
    _fuzz(tmp_path, QUICK_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= QUICK_EXAMPLES // 2
    assert log.outcomes["CheckpointError"] > 0


@pytest.mark.slow
def test_fuzz_checkpoint_loader_slow(tmp_path: Path, record_property: object) -> None:
    """As the quick variant, with ``SLOW_EXAMPLES`` cases."""
    log = FuzzLog("checkpoint loader (slow)")
    _fuzz(tmp_path, SLOW_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= SLOW_EXAMPLES // 2


@pytest.mark.slow
def test_every_byte_of_the_file_flipped_once(tmp_path: Path, record_property: object) -> None:
    """Exhaustive sweep: each byte of the checkpoint with one bit flipped (bit ``pos % 8``)."""
    log = FuzzLog("checkpoint single-bit sweep (slow)")
    path = tmp_path / "flip.pt"
    for pos in range(len(SEED)):
        path.write_bytes(mutate(SEED, [("flip", pos, 1 << (pos % 8))]))
        check_checkpoint(path, log)
    log.report(record_property)
    assert log.cases == len(SEED)
