"""``medspikeformer list-models``: the registered model names, what each is, and its family and
default teacher (``teacher.mode: auto``) — the names ``train --model`` and ``profile`` take."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "list the registered models (names for train --model, profile, experiment)"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("list-models", help=HELP, description=HELP)
    p.set_defaults(func=run)


def model_rows() -> list[tuple[str, str, str, str]]:
    """``(name, family, default teacher, first docstring line)`` per registered model, by name."""
    from medspikeformer.models import list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        doc = (info.builder.__doc__ or "").strip().splitlines()
        rows.append((name, info.family, info.default_teacher, doc[0] if doc else ""))
    return rows


def run(args: argparse.Namespace) -> int:
    rows = model_rows()
    headers = ("model", "family", "teacher", "description")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:3])]
    for row in (headers, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths)]
        print("  ".join([*cells, row[3]]).rstrip())
    return 0
