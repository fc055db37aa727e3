"""Shared test fixtures.

Tests run with two xdist workers on two cores, so each worker uses one intra-op thread.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

#: Test-time references installed outside the environment's package list (``make install``:
#: ``pip install --target <venv>/reference``), so that pip never reports their missing
#: dependencies (spikingjelly's torchvision) in that environment; found after everything else.
REFERENCE_DIR = Path(sys.prefix) / "reference"
if REFERENCE_DIR.is_dir() and str(REFERENCE_DIR) not in sys.path:
    sys.path.append(str(REFERENCE_DIR))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu``-marked tests need CUDA: elsewhere they are skipped, saying why."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none here); run by `make gpu-check`")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real data samples; skips the test when they are not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (they live outside the repo)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed_and_threads() -> Iterator[None]:
    """Every test starts from the same seed and one intra-op thread, and leaves one thread behind.

    Some tests call code that sets the thread count (the benchmark runner pins 2 threads). A later
    test in the same xdist worker would otherwise compute with another reduction order than the
    one-thread subprocesses it compares against (the kill/resume tests compare bit for bit). The
    reset after the test matters too: a module-scoped fixture of the next test is set up before
    this function-scoped one.
    """
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
