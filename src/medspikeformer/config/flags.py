"""Command-line flags derived from the declarations: every option with a ``flag`` becomes a
``train`` flag (type, choices, help from its :class:`~medspikeformer.config.options.Option`);
:func:`overrides_from_args` turns the flags given into the nested override dict that
:func:`~medspikeformer.config.layering.load_config` layers between the recipe and ``--set``.
"""

from __future__ import annotations

import argparse
from typing import Any

from medspikeformer.config.layering import dotted_to_nested
from medspikeformer.config.options import OptionField, iter_options, strip_optional
from medspikeformer.config.schema import TrainConfig

__all__ = [
    "add_option_flag",
    "add_option_flags",
    "flag_dest",
    "flag_options",
    "given_flags",
    "overrides_from_args",
    "resume_flags",
]


def flag_dest(spec: OptionField) -> str:
    """The ``argparse`` attribute of an option's flag (``--batch-size`` → ``batch_size``)."""
    assert spec.option.flag is not None
    return spec.option.flag.removeprefix("--").replace("-", "_")


def flag_options() -> list[OptionField]:
    """The options that have a ``train`` flag, in declaration order."""
    return [o for o in iter_options(TrainConfig) if o.option.flag]


def _option_by_key(key: str) -> OptionField:
    for spec in iter_options(TrainConfig):
        if spec.key == key:
            return spec
    raise KeyError(key)


def add_option_flag(parser: argparse.ArgumentParser, key: str, **override: Any) -> argparse.Action:
    """Add the declared flag of option ``key`` to ``parser``; ``override`` replaces argparse
    keywords (``default``, ``help``) where a command uses the option differently."""
    spec = _option_by_key(key)
    opt = spec.option
    if not opt.flag:
        raise KeyError(f"option {key} has no flag")
    kwargs: dict[str, Any] = {"dest": flag_dest(spec), "help": opt.help}
    if opt.action in ("store_true", "store_false"):
        # default None: "not given" must not override the config
        kwargs.update(action="store_true", default=None)
    elif opt.action == "append":
        kwargs.update(action="append", default=None)
    else:
        inner, _ = strip_optional(spec.type)
        kwargs["type"] = opt.flag_type or (inner if inner in (int, float, str) else str)
        if opt.choices is not None:
            kwargs["choices"] = list(opt.choices)
    if opt.metavar:
        kwargs["metavar"] = opt.metavar
    kwargs.update(override)
    return parser.add_argument(opt.flag, **kwargs)


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """Every declared ``train`` flag."""
    for spec in flag_options():
        add_option_flag(parser, spec.key)


def _flag_value(spec: OptionField, given: Any) -> Any:
    if spec.option.action == "store_false":
        return False  # --no-progress given: progress off
    if spec.option.action == "append":
        return list(given)
    return given


def given_flags(args: argparse.Namespace) -> list[OptionField]:
    """The declared flags present (not ``None``) in ``args``."""
    return [s for s in flag_options() if getattr(args, flag_dest(s), None) is not None]


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Nested override dict of the declared flags that were given."""
    flat = {s.key: _flag_value(s, getattr(args, flag_dest(s))) for s in given_flags(args)}
    return dotted_to_nested(flat)


def resume_flags() -> list[str]:
    """The flags that may be given with ``--resume``: those of options that may change on resume,
    except ``--out`` (``--resume RUN_DIR`` names the run directory); the loop's own (``--epochs``
    …) first, as the error message lists them."""
    specs = [s for s in flag_options() if s.option.resume and s.key != "out"]
    specs.sort(key=lambda s: not s.key.startswith("train."))  # stable: declaration order within
    return [s.option.flag for s in specs]
