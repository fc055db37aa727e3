"""A caching allocator for CPU tensors: large freed blocks are reused, not returned and re-faulted.

PyTorch has no caching allocator on CPU: every tensor above glibc's mmap threshold (≤ 32 MB) is a
fresh ``mmap`` that the kernel page-faults in and zeroes on first touch, and is unmapped again on
``free``. A MedSpikeFormer training step at 256² allocates a few GB of such activations, so with
the default allocator a large share of its time is page faults (docs/performance.md). glibc's own
knobs (``mallopt``: no mmap, no trim) keep the blocks, but inside one heap that fragments — at
batch 8, 256² the process grew past 20 GB.

This module installs a small C++ allocator (``csrc/cpu_cache.cpp``, built here with the C++
compiler that ``torch.compile`` needs anyway, once per torch version, into a cache folder) as
PyTorch's CPU allocator. It rounds requests of at least ``min_bytes`` to size classes (128 KiB
steps below 4 MiB, 2 MiB steps above), keeps freed blocks per class and hands them to the next
request of that class; each block stays its own allocation of the allocator it replaced (huge
pages included), so nothing fragments; and the bytes it holds (in use + cached) never pass the
high-water mark of bytes in use plus a slack (``MEDSPIKEFORMER_CPU_CACHE_GB``, default 1.5 GB;
never more than that mark again, and falling to zero as the mark reaches four times the slack):
the least recently freed blocks go back to the system first. So a process holds at most the
slack more than the default allocator would at its own peak, at any batch size; a small one
(inference of one image) at most twice its peak; a step above 6 GB in use (batch 8 at 256²)
nothing more — measured, it gains nothing from a slack (docs/performance.md). Training
steps repeat the same shapes, so after the first step nearly every large request is a hit. The
slack is needed because size classes do not split: at a step's peak some cached blocks are of
sizes not in use at that moment (a 256² batch-2 step with the joint teacher holds 1.4 GB above
its live peak when it misses nothing; docs/performance.md).

Hand-written because nothing maintained does this for PyTorch's CPU tensors: jemalloc/tcmalloc
need ``LD_PRELOAD`` before Python starts and a system package, PyTorch's ``CPUCachingAllocator``
exists only in its mobile build, and its pluggable-allocator API is CUDA-only.

:func:`install` is what the command-line interface and :func:`medspikeformer.engine.train` call
(unless ``MEDSPIKEFORMER_CPU_CACHE=0``); a process on a CUDA machine skips it, and so does any platform
but Linux. Where no compiler is found or the build fails it warns once and the default allocator
stays: results never depend on it, only speed and peak memory.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

SOURCE = "cpu_cache.cpp"
DEFAULT_MIN_BYTES = 256 << 10
DEFAULT_SLACK_GB = 1.5
ENV_SWITCH = "MEDSPIKEFORMER_CPU_CACHE"  # 0/off/false: keep PyTorch's default CPU allocator
ENV_SLACK = "MEDSPIKEFORMER_CPU_CACHE_GB"  # GB held beyond the peak in use

_lib: ctypes.CDLL | None = None
_failed: str | None = None


@dataclass(frozen=True)
class CacheStats:
    """Counters of the installed cache (all zero when it was never installed)."""

    hits: int
    misses: int
    evictions: int
    cached_bytes: int
    live_bytes: int
    peak_bytes: int
    passthrough: int
    peak_live: int

    @property
    def hit_rate(self) -> float:
        """Share of large requests served from the cache."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def cache_dir() -> Path:
    """Where the built library is kept: ``$MEDSPIKEFORMER_CACHE_DIR/ext``, else
    ``$XDG_CACHE_HOME/medspikeformer/ext``, else ``~/.cache/medspikeformer/ext``; a folder of the
    temporary directory when that one cannot be created (a read-only home)."""
    root = os.environ.get("MEDSPIKEFORMER_CACHE_DIR")
    if root:
        return Path(root) / "ext"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(xdg) / "medspikeformer" / "ext"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"medspikeformer-ext-{os.getuid()}"
    return folder


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")


def _build_flags() -> tuple[list[str], list[str]]:
    """Include and link flags for the installed torch (no ninja, no setuptools build step)."""
    import torch
    from torch.utils.cpp_extension import include_paths, library_paths

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    includes = [f"-I{p}" for p in include_paths()] + [f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
    links = []
    for path in library_paths():
        links += [f"-L{path}", f"-Wl,-rpath,{path}"]
    return includes, [*links, "-lc10"]


def library_path() -> Path:
    """The built library's path for this source, torch version and compiler."""
    import torch

    source = resources.files("medspikeformer.csrc").joinpath(SOURCE).read_bytes()
    key = hashlib.sha256(
        source + torch.__version__.encode() + str(_compiler()).encode() + sys.version.encode()
    ).hexdigest()[:16]
    return cache_dir() / f"cpu_cache-{key}.so"


def build(verbose: bool = False) -> Path:
    """Compile ``csrc/cpu_cache.cpp`` (a few seconds; skipped when already built) and return the
    library's path. Raises ``RuntimeError`` with the compiler's message when it fails."""
    target = library_path()
    if target.exists():
        return target
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++)")
    includes, links = _build_flags()
    target.parent.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("medspikeformer.csrc").joinpath(SOURCE)) as src:
        fd, tmp = tempfile.mkstemp(prefix=target.stem + ".", suffix=".tmp", dir=target.parent)
        os.close(fd)
        cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", *includes, str(src), "-o", tmp]
        cmd += links
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"building the CPU cache failed: {proc.stderr.strip()[-2000:]}")
            os.replace(tmp, target)  # atomic: a concurrent build never exposes a partial file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    if verbose:
        print(f"built {target}", file=sys.stderr)
    return target


def _load() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        import torch  # noqa: F401  (libc10 must be loaded before the library links to it)

        lib = ctypes.CDLL(str(build()))
        lib.msf_cpu_cache_install.argtypes = [ctypes.c_int64, ctypes.c_int64]
        lib.msf_cpu_cache_install.restype = ctypes.c_int
        lib.msf_cpu_cache_uninstall.restype = ctypes.c_int
        lib.msf_cpu_cache_active.restype = ctypes.c_int
        lib.msf_cpu_cache_set_slack.argtypes = [ctypes.c_int64]
        lib.msf_cpu_cache_stats.argtypes = [ctypes.POINTER(ctypes.c_int64)]
        _lib = lib
    return _lib


def slack_from_env(default_gb: float = DEFAULT_SLACK_GB) -> float:
    """The cache's slack in GB from ``MEDSPIKEFORMER_CPU_CACHE_GB`` (a number ≥ 0)."""
    raw = os.environ.get(ENV_SLACK)
    if raw is None or raw.strip() == "":
        return default_gb
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        from medspikeformer.errors import ConfigError

        raise ConfigError(f"{ENV_SLACK}={raw!r}: expected a number of GB ≥ 0")
    return value


def install(slack_gb: float | None = None, min_bytes: int = DEFAULT_MIN_BYTES) -> bool:
    """Make the cache PyTorch's CPU allocator (idempotent; a second call changes the slack).

    ``slack_gb``: how many GB the bytes held (in use + cached) may pass the high-water mark of
    bytes in use by (default ``MEDSPIKEFORMER_CPU_CACHE_GB``, else 1.5). Returns ``True`` when
    installed; on a build or load failure warns once and returns ``False`` (the default
    allocator stays).
    """
    global _failed
    if _failed is not None or not sys.platform.startswith("linux"):
        return False  # built and tested on Linux (glibc, ELF) only
    slack = slack_from_env() if slack_gb is None else float(slack_gb)
    if not slack >= 0:
        raise ValueError(f"slack_gb must be ≥ 0, got {slack}")
    try:
        lib = _load()
    except (OSError, RuntimeError) as exc:
        _failed = str(exc)
        warnings.warn(
            f"CPU tensor cache not available, using PyTorch's default allocator: {exc}",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return lib.msf_cpu_cache_install(int(min_bytes), int(slack * 1e9)) == 0


def uninstall() -> None:
    """Give PyTorch its previous CPU allocator back and free every cached block."""
    if _lib is not None:
        _lib.msf_cpu_cache_uninstall()


def active() -> bool:
    """Whether the cache is PyTorch's CPU allocator now."""
    return _lib is not None and bool(_lib.msf_cpu_cache_active())


def empty_cache() -> None:
    """Return every free block the cache holds to the system (blocks in use are untouched)."""
    if _lib is not None:
        _lib.msf_cpu_cache_empty()


def reset_peak() -> None:
    """Start the high-water marks again from the bytes in use now (cached blocks beyond the
    slack are freed), e.g. after a phase whose peak the rest of the process will not reach."""
    if _lib is not None:
        _lib.msf_cpu_cache_reset_peak()


def stats() -> CacheStats:
    """The cache's counters."""
    values = (ctypes.c_int64 * 8)()
    if _lib is not None:
        _lib.msf_cpu_cache_stats(values)
    return CacheStats(*[int(v) for v in values])


def requested() -> bool:
    """Whether the process settings should install the cache: not switched off by
    ``MEDSPIKEFORMER_CPU_CACHE`` (``0``, ``off``, ``false``, ``no``)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")
