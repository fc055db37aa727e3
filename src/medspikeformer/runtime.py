"""The one device resolver, the GPU-run guess made without torch, the progress-bar rule and the
platforms training runs on.

Nothing here changes the process: the command line's process settings (a preloaded allocator,
huge pages for large CPU tensors) live in :mod:`medspikeformer.allocator` and are applied by the
command line alone, never by importing the package or calling the library.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported lazily: the command line sets its variables before it loads
    import torch


_state: dict[str, bool] = {}  # once-per-process notices

#: ``sys.platform`` prefixes where ``train`` and ``experiment`` run, with their names. A run
#: directory's lock needs POSIX ``flock`` and the signal-0 probe of its owner's process id
#: (``engine/run_dir.py``); on Windows ``os.kill(pid, 0)`` would end that process instead.
TRAIN_PLATFORMS: dict[str, str] = {"linux": "Linux", "darwin": "macOS"}

#: Files that exist where an NVIDIA driver is loaded.
DRIVER_PATHS = ("/dev/nvidiactl", "/proc/driver/nvidia/gpus")


def torch_built_with_cuda() -> bool:
    """Whether the installed torch is a CUDA build, read from its ``version.py`` without
    importing torch (the already imported module's ``torch.version.cuda`` if it is loaded)."""
    if "torch" in sys.modules:
        return sys.modules["torch"].version.cuda is not None
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    version = os.path.join(next(iter(spec.submodule_search_locations)), "version.py")
    try:
        with open(version, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return True  # unknown: assume the common case of a GPU node
    return re.search(r"^cuda\b[^=]*=\s*None\s*$", text, re.MULTILINE) is None


def cuda_expected(
    environ: dict[str, str] | None = None,
    driver_paths: tuple[str, ...] | None = None,
    torch_cuda: bool | None = None,
) -> bool:
    """Whether this process will most likely compute on an NVIDIA GPU, decided without importing
    torch (the command line's CPU settings must be made before torch loads).

    True when an NVIDIA driver node exists (:data:`DRIVER_PATHS`), ``CUDA_VISIBLE_DEVICES`` does
    not hide every device (unset, or not ``""``/``-1``) and torch is a CUDA build
    (``torch_cuda``; default :func:`torch_built_with_cuda`): a CPU-only torch trains on the CPU
    whatever the machine holds, and gets the CPU settings.
    """
    env = os.environ if environ is None else environ
    paths = DRIVER_PATHS if driver_paths is None else driver_paths
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if not any(os.path.exists(p) for p in paths):
        return False
    return torch_built_with_cuda() if torch_cuda is None else torch_cuda


def warn_cpu_torch_on_gpu_machine() -> bool:
    """One loud stderr line, once per process, when an NVIDIA driver is present but torch has no
    CUDA (a CPU-only wheel): the run would otherwise train on the CPU with only "on cpu" to say
    so. Returns whether it warned."""
    import torch

    if _state.get("cpu_torch_warned") or torch.version.cuda is not None:
        return False
    if not any(os.path.exists(p) for p in DRIVER_PATHS):
        return False
    _state["cpu_torch_warned"] = True
    print(
        f"warning: an NVIDIA driver is present but torch {torch.__version__} is a CPU-only build: "
        "running on the CPU; install a CUDA build of torch to use the GPU "
        "(docs/performance.md, 'On a GPU')",
        file=sys.stderr,
        flush=True,
    )
    return True


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
            warn_cpu_torch_on_gpu_machine()
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


def check_train_platform(command: str = "train") -> None:
    """:class:`~medspikeformer.errors.PlatformError` (one line naming the supported platforms)
    unless this is one of :data:`TRAIN_PLATFORMS`."""
    if sys.platform.startswith(tuple(TRAIN_PLATFORMS)):
        return
    from medspikeformer.errors import PlatformError

    names = " and ".join(TRAIN_PLATFORMS.values())
    raise PlatformError(
        f"{command} runs on {names} only, not on {sys.platform} (a run directory's lock needs "
        "POSIX file locks); on Windows run it under WSL2"
    )
