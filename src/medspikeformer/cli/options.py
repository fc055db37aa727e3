"""Command-line options that several commands share, defined once."""

from __future__ import annotations

import argparse


def add_exact_option(parser: argparse.ArgumentParser) -> None:
    """``--exact`` of ``predict`` and ``evaluate``: the model as trained instead of
    :func:`medspikeformer.models.fuse.optimize_for_inference`."""
    parser.add_argument(
        "--exact",
        action="store_true",
        help="run the model as trained: BN not folded, the LIF backend of its config "
        "(default: folded BN and the compiled LIF, faster; masks can differ at rare ties)",
    )
