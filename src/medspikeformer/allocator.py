"""The memory allocator a command-line run uses: a maintained ``malloc`` preloaded at start.

PyTorch keeps no cache of CPU memory: with glibc, every tensor above its mmap threshold is a
fresh ``mmap`` that the kernel faults in and zeroes on first touch and unmaps again on free, so a
training step at 256² spends a large share of its time in page faults. A general-purpose allocator
that keeps freed pages for reuse (mimalloc, jemalloc, tcmalloc) removes most of them; PyTorch's
own CPU launcher (``torch.backends.xeon.run_cpu``) preloads jemalloc or tcmalloc for this reason.
They can only replace ``malloc`` before the process starts (``LD_PRELOAD``), so the command line
re-executes itself once under the chosen library (:func:`reexec_if_wanted`); a library user who
wants the same launches Python with :func:`preload_env`'s variables (``medspikeformer
allocator`` prints them). The choice and its measurements: docs/performance.md, "Allocators".

``MEDSPIKEFORMER_ALLOCATOR`` picks it: ``auto`` (default: the first of :data:`PREFERENCE` that is
installed), a name of :data:`ALLOCATORS`, or ``system`` (glibc, no preload). Results never
depend on it (the arithmetic is the same), only speed and memory held. Linux only; nothing is
preloaded where a GPU run is expected (:func:`medspikeformer.runtime.cuda_expected`: the large
buffers then live in GPU memory).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medspikeformer.errors import ConfigError

ENV_CHOICE = "MEDSPIKEFORMER_ALLOCATOR"
ENV_ACTIVE = "MEDSPIKEFORMER_ALLOCATOR_ACTIVE"  # set in the re-executed process: never twice
SYSTEM = "system"
AUTO = "auto"


@dataclass(frozen=True)
class Allocator:
    """A preloadable ``malloc``: the names its shared library goes by and its settings.

    Attributes:
        name: what ``MEDSPIKEFORMER_ALLOCATOR`` calls it.
        libraries: ``ctypes.util.find_library`` names, tried in order (system packages).
        wheel_paths: paths under ``site-packages`` where a PyPI wheel puts the library.
        env: variables set beside ``LD_PRELOAD`` (unless the user set them already).
    """

    name: str
    libraries: tuple[str, ...]
    wheel_paths: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


ALLOCATORS: dict[str, Allocator] = {
    a.name: a
    for a in (
        # `pip install medspikeformer[fast-cpu]` brings it (cmeel-mimalloc ships the .so).
        Allocator("mimalloc", ("mimalloc",), ("cmeel.prefix/lib/libmimalloc.so",)),
        # torch.backends.xeon.run_cpu's settings: return pages in the background, keep metadata
        # on huge pages, and no arena for large requests (oversize_threshold).
        Allocator(
            "jemalloc",
            ("jemalloc",),
            env={"MALLOC_CONF": "oversize_threshold:1,background_thread:true,metadata_thp:auto"},
        ),
        Allocator("tcmalloc", ("tcmalloc_minimal", "tcmalloc")),
    )
}
PREFERENCE: tuple[str, ...] = ("tcmalloc",)
"""What ``auto`` preloads when installed, in order. Only tcmalloc: measured beside the former
tensor cache, jemalloc and mimalloc were no faster than glibc (docs/performance.md,
"Allocators"); they stay available by name."""
CHOICES: tuple[str, ...] = (AUTO, *ALLOCATORS, SYSTEM)


def requested(environ: Mapping[str, str] | None = None) -> str:
    """The value of ``MEDSPIKEFORMER_ALLOCATOR`` (``auto`` when unset); ConfigError naming the
    choices for anything else."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_CHOICE, AUTO).strip().lower() or AUTO
    if value not in CHOICES:
        raise ConfigError(
            f"{ENV_CHOICE}={env.get(ENV_CHOICE)!r} is not one of {', '.join(CHOICES)}"
        )
    return value


def library_path(name: str, site_dirs: Sequence[str] | None = None) -> str | None:
    """Where allocator ``name``'s shared library is: a wheel's copy under ``site-packages``
    first, then the system's (a soname the dynamic loader resolves); ``None`` if neither."""
    alloc = ALLOCATORS[name]
    dirs = _site_dirs() if site_dirs is None else site_dirs
    for folder in dirs:
        for rel in alloc.wheel_paths:
            path = Path(folder) / rel
            if path.is_file():
                return str(path)
    for lib in alloc.libraries:
        found = ctypes.util.find_library(lib)
        if found:
            return found
    return None


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(p for p in (paths.get("purelib"), paths.get("platlib")) if p))


def resolve(choice: str, site_dirs: Sequence[str] | None = None) -> tuple[str, str | None]:
    """``(allocator name, library)`` for a choice: ``auto`` → the first installed one of
    :data:`PREFERENCE` (or ``system``); a named one that is not installed → ConfigError with
    the way to install it; ``system`` → ``("system", None)``."""
    if choice == SYSTEM:
        return SYSTEM, None
    names = PREFERENCE if choice == AUTO else (choice,)
    for name in names:
        lib = library_path(name, site_dirs)
        if lib is not None:
            return name, lib
    if choice == AUTO:
        return SYSTEM, None
    raise ConfigError(
        f"{ENV_CHOICE}={choice}: no {choice} library found (pip install "
        f"'medspikeformer[fast-cpu]' for mimalloc, or the system package lib{choice})"
    )


def preload_env(
    name: str, library: str, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables that start a process under ``library``: ``LD_PRELOAD`` (prepended to any
    the caller has), the allocator's own settings (a value the caller set wins), and
    :data:`ENV_ACTIVE`."""
    env = os.environ if environ is None else environ
    out = {k: v for k, v in ALLOCATORS[name].env.items() if k not in env}
    existing = env.get("LD_PRELOAD", "")
    out["LD_PRELOAD"] = f"{library}:{existing}" if existing else library
    out[ENV_ACTIVE] = name
    return out


def active(environ: Mapping[str, str] | None = None) -> str:
    """The allocator this process runs under: the name recorded by a re-execution, else
    ``system``."""
    env = os.environ if environ is None else environ
    return env.get(ENV_ACTIVE) or SYSTEM


def should_reexec(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a command-line start should re-execute itself under a preloaded allocator: on
    Linux, not already done, no ``malloc`` preloaded by the user, and no GPU run expected."""
    from medspikeformer.runtime import cuda_expected

    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or env.get(ENV_ACTIVE):
        return False
    preloaded = env.get("LD_PRELOAD", "")
    if any(a in preloaded for a in ALLOCATORS):  # the user chose one already: theirs stays
        return False
    return not cuda_expected(env)


def cpu_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables the command line sets for itself before torch loads: huge pages for PyTorch's
    large CPU tensors (c10's ``THP_MEM_ALLOC_ENABLE``; with 4 KB pages a fresh 64 MB buffer costs
    ~16 000 page faults) unless the user set it or a GPU run is expected."""
    from medspikeformer.runtime import cuda_expected

    env = os.environ if environ is None else environ
    if "THP_MEM_ALLOC_ENABLE" in env or cuda_expected(env):
        return {}
    return {"THP_MEM_ALLOC_ENABLE": "1"}


def reexec_if_wanted(argv: Sequence[str]) -> None:
    """Replace this process by ``python -m medspikeformer ARGV`` under the chosen allocator
    (same PID, arguments, standard streams and environment besides the preload). Returns
    without doing anything when :func:`should_reexec` says no or nothing is installed; raises
    ConfigError for a bad ``MEDSPIKEFORMER_ALLOCATOR``."""
    choice = requested()
    if choice == SYSTEM or not should_reexec():
        return
    name, library = resolve(choice)
    if library is None:
        return
    env = {**os.environ, **cpu_settings(), **preload_env(name, library)}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "medspikeformer", *argv], env)
