"""Command-line options that several commands share, defined once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: ``--set data.options.KEY=VALUE`` (as ``train`` spells a loader option) or ``-o KEY=VALUE``.
OPTION_PREFIX = "data.options."


def output_name(text: str) -> str:
    """The ``type`` of every option naming a file or folder to write (``--out``, ``--onnx``,
    ``--json`` …): an empty name is refused, since ``Path('')`` is the working folder and a
    command would write there (or call it "a directory") without being asked to."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "empty path (it would name the working folder); give a file or folder name"
        )
    return text


def output_path(text: str) -> Path:
    """:func:`output_name` as a ``Path``."""
    return Path(output_name(text))


def add_exact_option(parser: argparse.ArgumentParser) -> None:
    """``--exact`` of ``predict`` and ``evaluate``: the model as trained instead of
    :func:`medspikeformer.models.fuse.optimize_for_inference`."""
    parser.add_argument(
        "--exact",
        action="store_true",
        help="run the model as trained: BN not folded, the LIF backend of its config "
        "(default: folded BN and the compiled LIF, faster; masks can differ at rare ties)",
    )


def add_ensemble_options(parser: argparse.ArgumentParser) -> None:
    """``--ensemble CKPT`` (repeatable) and ``--largest-component`` of ``predict`` and
    ``evaluate`` (docs/inference.md, "Ensembles and post-processing")."""
    parser.add_argument(
        "--ensemble",
        action="append",
        type=Path,
        default=[],
        metavar="CKPT",
        help="another checkpoint averaged with CHECKPOINT (repeatable): the mean of the "
        "members' probabilities, thresholded / argmaxed; members must agree on classes, size, "
        "channels, preprocessing and labels",
    )
    parser.add_argument(
        "--largest-component",
        action="store_true",
        help="keep only the largest connected component of each foreground class (3-D "
        "volumes: in 3-D)",
    )


def add_loader_option_argument(parser: argparse.ArgumentParser) -> None:
    """``--set data.options.KEY=VALUE`` / ``-o KEY=VALUE`` of the commands that read a dataset
    folder (``data check|show``, ``evaluate``): loader options as ``train`` spells them."""
    parser.add_argument(
        "--set",
        "--option",
        "-o",
        dest="option",
        action="append",
        metavar="data.options.KEY=VALUE",
        help="loader option as train spells it, e.g. --set data.options.mask_suffix=_mask "
        "(short: -o mask_suffix=_mask; repeatable)",
    )


def parse_loader_options(items: list[str] | None, command: str) -> dict[str, Any]:
    """``{KEY: value}`` of :func:`add_loader_option_argument`'s items (values parsed as YAML
    scalars); anything else is one ConfigError line naming ``command``."""
    import yaml

    from medspikeformer.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects data.options.KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        key = key[len(OPTION_PREFIX) :] if key.startswith(OPTION_PREFIX) else key
        if not key or "." in key:
            raise ConfigError(
                f"--set {item!r}: {command} take loader options only, {OPTION_PREFIX}KEY=VALUE"
            )
        out[key] = yaml.safe_load(value)
    return out
