"""Process-level settings that change speed, never results, and the one device resolver.

:func:`apply_process_settings` (called by the command-line interface, :func:`medspikeformer.engine.train`
and the benchmark children) installs the CPU tensor cache (:mod:`medspikeformer.cpu_cache`): glibc
serves every allocation above 32 MB with a fresh ``mmap`` that the kernel faults in and zeroes, so
without it a training step at 256² spends a large share of its time page-faulting its activations.
``MEDSPIKEFORMER_CPU_CACHE=0`` keeps PyTorch's default allocator; ``MEDSPIKEFORMER_CPU_CACHE_GB``
sets how far the memory held may pass the peak of memory in use (default 1.5 GB; see
:mod:`medspikeformer.cpu_cache` for how it shrinks for small and large processes).

The cache and the transparent huge pages that importing the package turns on
(``THP_MEM_ALLOC_ENABLE``) are for CPU runs: on a machine with a visible NVIDIA GPU
(:func:`cuda_expected`), where ``auto`` trains on CUDA and the big buffers live in GPU memory,
neither is applied — a GPU run's host side (pinned loader batches, many small tensors) gains
nothing from them.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily: the huge-page switch must be set before it loads
    import torch

_state: dict[str, bool] = {}


def cuda_expected(
    environ: dict[str, str] | None = None, driver_paths: tuple[str, ...] | None = None
) -> bool:
    """Whether this process will most likely compute on an NVIDIA GPU, decided without importing
    torch (the huge-page switch must be set before torch loads).

    True when an NVIDIA driver node exists (``/dev/nvidiactl``, ``/proc/driver/nvidia/gpus``) and
    ``CUDA_VISIBLE_DEVICES`` does not hide every device (unset, or not ``""``/``-1``).
    """
    env = os.environ if environ is None else environ
    paths = ("/dev/nvidiactl", "/proc/driver/nvidia/gpus") if driver_paths is None else driver_paths
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in paths)


def apply_process_settings() -> bool:
    """Install the CPU tensor cache unless ``MEDSPIKEFORMER_CPU_CACHE=0`` or a GPU run is
    expected (:func:`cuda_expected`); idempotent. Returns whether the cache is installed."""
    if "cache" not in _state:
        from medspikeformer import cpu_cache

        _state["cache"] = cpu_cache.requested() and not cuda_expected() and cpu_cache.install()
    return _state["cache"]


def resolve_device(
    device: str | torch.device | None = None, local_rank: int | None = None
) -> torch.device:
    """The one device resolver of the package (training, inference, experiments).

    ``None``/``"auto"`` → CUDA when available (``cuda:local_rank`` when a rank is given), else
    CPU; ``"cuda"`` → ``cuda:local_rank`` when a rank is given; a CUDA device asked for on a
    machine without CUDA → ConfigError; anything else (``cpu``, ``cuda:1``, ``mps``, a
    ``torch.device``) as given. torch is imported here, not at module import (see above).
    """
    import torch

    from medspikeformer.errors import ConfigError

    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device)
    cuda = torch.cuda.is_available()
    if name == "auto":
        if not cuda:
            return torch.device("cpu")
        return torch.device("cuda") if local_rank is None else torch.device("cuda", local_rank)
    if name.startswith("cuda") and not cuda:
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS is not available here")
    if name == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank)
    try:
        return torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"device {name!r}: not a device (auto, cpu, cuda, cuda:N or mps)"
        ) from None


def progress_enabled(requested: bool = True) -> bool:
    """Whether to draw a progress bar: asked for *and* stderr is a terminal (a bar in a log file,
    a pipe or a CI log is noise: every redraw becomes another line)."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(requested and isatty is not None and isatty())
