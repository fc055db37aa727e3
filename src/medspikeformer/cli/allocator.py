"""``medspikeformer allocator``: which memory allocator this program runs under, which one
``MEDSPIKEFORMER_ALLOCATOR`` asks for, and the line that gives a Python script of a library user
the same (docs/performance.md, "Allocators")."""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

HELP = "show the memory allocator a run uses and how to use it from a Python script"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("allocator", help=HELP, description=HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medspikeformer import allocator

    choice = allocator.requested()
    name, library = allocator.resolve(choice)
    print(f"running under: {allocator.active()}")
    print(f"{allocator.ENV_CHOICE}={choice} → {name}" + (f" ({library})" if library else ""))
    if library is not None:
        env = allocator.preload_env(name, library, environ={})
        env.pop(allocator.ENV_ACTIVE)
        line = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        print(f"a Python script under it: {line} python SCRIPT.py")
    elif choice == allocator.AUTO:
        print(
            "none installed of: "
            + ", ".join(allocator.PREFERENCE)
            + " (Debian: libtcmalloc-minimal4)"
        )
    print(
        f"huge pages for large CPU tensors: THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', 'unset')}"
    )
    return 0
