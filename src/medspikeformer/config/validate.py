"""Validation derived from the declarations: types were coerced on reading; here every option's
choices, bounds and own rule (:class:`~medspikeformer.config.options.Option`), every float finite
at any depth, the rules that tie two options, and (``check_model``) the model itself.

Each failure is one ``ConfigError`` line naming the key: ``config value train.epochs=0 must be
at least 1``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from medspikeformer.config.models import build_model_from_config, check_size_divisor
from medspikeformer.config.options import Option, OptionField, iter_options
from medspikeformer.config.schema import TrainConfig
from medspikeformer.errors import ConfigError

__all__ = ["bounds_text", "check_finite", "check_option", "validate_config"]


def _lookup(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _num(x: float) -> str:
    return f"{x:g}"


def bounds_text(opt: Option) -> str | None:
    """``at least 1``, ``positive``, ``in (0, 1)``, ``>= 0`` … (``None`` without bounds)."""
    low = (opt.ge, "[") if opt.ge is not None else (opt.gt, "(") if opt.gt is not None else None
    high = (opt.le, "]") if opt.le is not None else (opt.lt, ")") if opt.lt is not None else None
    if low and high:
        return f"in {low[1]}{_num(low[0])}, {_num(high[0])}{high[1]}"
    if low:
        if low[1] == "(":
            return "positive" if low[0] == 0 else f"greater than {_num(low[0])}"
        return f">= {_num(low[0])}" if low[0] == 0 else f"at least {_num(low[0])}"
    if high:
        return f"<= {_num(high[0])}" if high[1] == "]" else f"less than {_num(high[0])}"
    return None


def _within(value: float, opt: Option) -> bool:
    return not (
        (opt.ge is not None and value < opt.ge)
        or (opt.gt is not None and value <= opt.gt)
        or (opt.le is not None and value > opt.le)
        or (opt.lt is not None and value >= opt.lt)
    )


def check_option(value: Any, spec: OptionField) -> None:
    """One option's value against its declaration (null is allowed where the type says so)."""
    opt, key = spec.option, spec.key
    if value is None:
        return  # coercion refused null for the fields that cannot be null
    if opt.choices is not None and value not in opt.choices:
        shown = ", ".join(str(c) for c in opt.choices)
        raise ConfigError(f"config value {key}={value!r} is not one of {shown}")
    bounds = bounds_text(opt)
    if bounds is not None:
        items = value if isinstance(value, list) else [value]
        if not all(_within(v, opt) for v in items):
            shown = list(value) if isinstance(value, list) else value
            null = " or null" if spec.nullable else ""
            raise ConfigError(f"config value {key}={shown} must be {bounds}{null}")
    if opt.check is not None:
        opt.check(value, key)


def check_finite(config: TrainConfig) -> None:
    """Every float of the config finite, at any depth — nested sections (``teacher.align``),
    dicts (model and loader options) and lists alike (``.nan`` / ``.inf`` pass ``lr <= 0``-style
    checks: every comparison with NaN is false)."""

    def walk(value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config value {where}={value!r} must be a finite number")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                name = f"{where}.{f.name}" if where else f.name
                # model options are spelled model.KEY (the YAML's flat model section)
                walk(getattr(value, f.name), "model" if name == "model.options" else name)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, where)

    walk(config, "")


def _check_across(config: TrainConfig) -> None:
    """Rules that tie two options together."""
    from medspikeformer.data.selection import check_validation_options

    d = config.data
    check_validation_options(d.validation, d.val_fraction, d.folds, d.fold, where="data")


def validate_config(config: TrainConfig, *, check_model: bool = True) -> None:
    """Check what the types cannot: every declared option's choices, bounds and rule, finite
    numbers at any depth, the rules across options, and with ``check_model`` the model (looked
    up in the registry, built once on CPU, the training size checked against its
    ``size_divisor``)."""
    check_finite(config)
    for spec in iter_options(type(config)):
        check_option(_lookup(config, spec.key), spec)
    _check_across(config)
    if check_model:
        model = build_model_from_config(config)
        check_size_divisor(config.data.size, model.size_divisor, config.model.name)
