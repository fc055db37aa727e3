"""Process-level settings that change speed, never results, and the one device resolver.

:func:`tune_cpu_allocator` keeps freed large blocks inside the process. glibc serves every
allocation above 32 MB with a fresh ``mmap`` and returns it to the kernel on ``free``; a
MedSpikeFormer training step at 256² allocates a few GB of such activation buffers, so every step
page-faults all of them in again (800 000 minor faults per batch-2 step) and the kernel zeroes
them. With ``mmap`` off for the heap (``M_MMAP_MAX = 0``) and trimming raised
(``M_TRIM_THRESHOLD``), the buffers are reused. Measured on 2 cores (docs/performance.md): batch 8
at 128² 9.7 s → 4.9 s per step (peak RSS 4.7 → 5.9 GB), batch 2 at 256² 9.3 s → 4.2–5.5 s
(4.2 → 6.4 GB) — but batch 8 at 256² grew past 20 GB (heap fragmentation: freed blocks inside
the heap cannot be given back), where the default allocator peaks at 8.8 GB.

So it is **opt-in**: ``MEDSPIKEFORMER_MALLOC=reuse`` in the environment makes the command-line
interface and :func:`medspikeformer.engine.train` call it; library users may call it directly.
Use it when a step's activations are a few GB and RAM has room for twice that.

Both settings here and the transparent huge pages that importing the package turns on
(``THP_MEM_ALLOC_ENABLE``) are for CPU runs: on a machine with a visible NVIDIA GPU
(:func:`cuda_expected`), where ``auto`` trains on CUDA and the big buffers live in GPU memory,
neither is applied — a GPU run's host side (pinned loader batches, many small tensors) gains
nothing from them and a 2 GB malloc trim threshold only holds host memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily: the huge-page switch must be set before it loads
    import torch

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # largest value mallopt's int takes: keep up to ~2 GB free at the top

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


def tune_cpu_allocator() -> bool:
    """Make glibc keep large freed blocks for reuse (no ``mmap`` per tensor, no trimming).

    Returns ``True`` when the settings are in effect (Linux with glibc); idempotent. Elsewhere it
    does nothing and returns ``False``.
    """
    if "tuned" in _state:
        return _state["tuned"]
    tuned = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # musl or another libc: leave the allocator alone
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            tuned = bool(mallopt(_M_MMAP_MAX, 0)) and bool(
                mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
            )
    _state["tuned"] = tuned
    return tuned


def apply_requested_settings() -> bool:
    """Tune the allocator when ``MEDSPIKEFORMER_MALLOC=reuse`` asks for it (CLI and engine) and
    no GPU run is expected (:func:`cuda_expected`); call :func:`tune_cpu_allocator` directly to
    force it for a CPU run on a GPU machine."""
    if os.environ.get("MEDSPIKEFORMER_MALLOC", "").lower() == "reuse" and not cuda_expected():
        return tune_cpu_allocator()
    return False


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
    if name == "cuda" and local_rank is not None:
        return torch.device("cuda", local_rank)
    return torch.device(name)


def progress_enabled(requested: bool = True) -> bool:
    """Whether to draw a progress bar: asked for *and* stderr is a terminal (a bar in a log file,
    a pipe or a CI log is noise: every redraw becomes another line)."""
    import sys

    isatty = getattr(sys.stderr, "isatty", None)
    return bool(requested and isatty is not None and isatty())
