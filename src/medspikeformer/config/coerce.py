"""Dict ↔ dataclass: the typed reading of a nested config dict and its plain-dict writing.

:func:`config_from_dict` is strict (an unknown key is a ``ConfigError`` naming it and the known
ones); :func:`read_known_config` is the tolerant reader of old or newer checkpoints' saved
configs (keys this version does not declare are dropped, missing ones take their defaults).
Values are coerced to the declared type (``"3"`` → 3 for an ``int`` field, ``"yes"`` → True).
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import yaml

from medspikeformer.config.options import strip_optional
from medspikeformer.config.schema import ModelConfig, TrainConfig, config_to_dict
from medspikeformer.config.yaml_files import safe_yaml_load
from medspikeformer.errors import ConfigError

__all__ = [
    "config_from_dict",
    "config_to_dict",
    "model_section_to_dict",
    "read_known_config",
]


def model_section_to_dict(section: Mapping[str, Any]) -> dict[str, Any]:
    """YAML ``model:`` (flat: name + options) → ModelConfig fields."""
    section = dict(section)
    given = section.pop("options", None) or {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"config value model.options must be a mapping, got {given!r}")
    options = dict(given)
    name = section.pop("name", ModelConfig.name)
    options.update(section)
    return {"name": name, "options": options}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` (str → number/bool where unambiguous)."""
    inner, optional = strip_optional(tp)
    if value is None:
        if optional or inner is Any:
            return None
        raise ConfigError(f"config value {where} must not be null")
    if inner is Any:
        return value
    if dataclasses.is_dataclass(inner):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section {where} must be a mapping, got {value!r}")
        return _build(inner, value, where)
    origin = typing.get_origin(inner)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config value {where} must be a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        (item_tp,) = typing.get_args(inner) or (Any,)
        if isinstance(value, str):
            try:
                value = safe_yaml_load(value)
            except (yaml.YAMLError, RecursionError):
                raise ConfigError(f"config value {where} must be a list, got {value!r}") from None
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"config value {where} must be a list, got {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "true",
            "yes",
            "on",
            "1",
            "false",
            "no",
            "off",
            "0",
        ):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"config value {where} must be true/false, got {value!r}")
    if inner is int:
        if isinstance(value, bool):
            raise ConfigError(f"config value {where} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # not an integer: the error below names it
                return int(value)
        raise ConfigError(f"config value {where} must be an integer, got {value!r}")
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"config value {where} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config value {where} must be a number, got {value!r}") from None
    if inner is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config value {where} must be a string, got {value!r}")
    return value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if cls is ModelConfig:
        data = model_section_to_dict(data)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in names), key=str)  # keys may be any YAML type
    if unknown:
        prefix = f"{where}." if where else ""
        key = unknown[0]
        shown = key if isinstance(key, str) and key.isprintable() and key else repr(key)
        raise ConfigError(
            f"unknown config key {prefix}{shown} (known in {where or 'top level'}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None) -> TrainConfig:
    """Build a TrainConfig from a (possibly partial) nested dict; unknown keys → ConfigError."""
    return _build(TrainConfig, dict(data or {}), "")


def _known_keys(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys ``cls`` (a config dataclass) does not declare, recursively; the
    model section is kept whole (every key but ``name`` is a model option)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            continue
        sub = hints[key]
        if dataclasses.is_dataclass(sub) and sub is not ModelConfig and isinstance(value, Mapping):
            value = _known_keys(sub, value)
        out[key] = value
    return out


def read_known_config(data: Mapping[str, Any] | None) -> TrainConfig:
    """The tolerant reader of a saved config (a checkpoint's ``train_config``): keys this
    version does not declare (a newer or hand-written config) are ignored, missing ones take
    their defaults. A declared key of the wrong type is still a ``ConfigError`` naming it."""
    return config_from_dict(_known_keys(TrainConfig, dict(data or {})))
