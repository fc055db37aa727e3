"""The one device resolver, the GPU-run guess made without torch, and the progress-bar rule.

Nothing here changes the process: the command line's process settings (a preloaded allocator,
huge pages for large CPU tensors) live in :mod:`medspikeformer.allocator` and are applied by the
command line alone, never by importing the package or calling the library.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily: the command line sets its variables before it loads
    import torch


def cuda_expected(
    environ: dict[str, str] | None = None, driver_paths: tuple[str, ...] | None = None
) -> bool:
    """Whether this process will most likely compute on an NVIDIA GPU, decided without importing
    torch (the command line's CPU settings must be made before torch loads).

    True when an NVIDIA driver node exists (``/dev/nvidiactl``, ``/proc/driver/nvidia/gpus``) and
    ``CUDA_VISIBLE_DEVICES`` does not hide every device (unset, or not ``""``/``-1``).
    """
    env = os.environ if environ is None else environ
    paths = ("/dev/nvidiactl", "/proc/driver/nvidia/gpus") if driver_paths is None else driver_paths
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(os.path.exists(p) for p in paths)


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
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(requested and isatty is not None and isatty())
