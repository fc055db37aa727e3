"""Shared test fixtures.

Tests run with two xdist workers on two cores, so each worker uses one intra-op thread.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real data samples; skips the test when they are not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (they live outside the repo)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    """Every test starts from the same seed and one intra-op thread.

    Some tests call code that sets the thread count (the benchmark runner pins 2 threads); a later
    test in the same xdist worker would otherwise compute with another reduction order than the
    one-thread subprocesses it compares against (the kill/resume tests compare bit for bit).
    """
    torch.manual_seed(0)
    torch.set_num_threads(1)
