"""Layering: defaults < ``--config FILE`` < ``--recipe`` < common flags < ``--set key=value``.

A *recipe* is a partial config (same schema) merged over the dataset config, e.g. the shipped
``cpu-quick`` recipe (``src/medspikeformer/configs/recipes/``). Values given as strings on the
command line are parsed as YAML scalars (``--set optim.lr=3e-4``, ``--set
teacher.align.stages=[1,2,3]``) and coerced to the field's type. A ``--model`` of another family
drops the file's model options (:func:`~medspikeformer.config.models.switch_model`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from medspikeformer.config.coerce import config_from_dict
from medspikeformer.config.models import switch_model
from medspikeformer.config.schema import TrainConfig
from medspikeformer.config.yaml_files import find_config_file, read_yaml, safe_yaml_load
from medspikeformer.errors import ConfigError

__all__ = ["dotted_to_nested", "load_config", "merge_dicts", "parse_set_option"]


def merge_dicts(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, anything else in ``update`` replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def dotted_to_nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim.lr": 3e-4, "train.epochs": 2}`` → ``{"optim": {"lr": 3e-4}, "train": {"epochs": 2}}``
    (later keys merge into the sections earlier ones opened)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def parse_set_option(text: str) -> dict[str, Any]:
    """``'optim.lr=3e-4'`` → ``{"optim": {"lr": 3e-4}}`` (the value is parsed as a YAML scalar)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = safe_yaml_load(raw) if raw.strip() else None
    except (yaml.YAMLError, RecursionError):
        value = raw
    # YAML 1.1 reads 1e-4 as a string; numbers are coerced by field type later.
    return dotted_to_nested({key: value})


def load_config(
    config: str | Path | None = None,
    *,
    recipe: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
) -> TrainConfig:
    """Resolve a TrainConfig: defaults < config file < recipe < ``overrides`` (nested dict) < sets."""
    data: dict[str, Any] = {}
    if config is not None:
        data = merge_dicts(data, read_yaml(find_config_file(config, "config")))
    if recipe is not None:
        data = merge_dicts(data, read_yaml(find_config_file(recipe, "recipe")))
    given: dict[str, Any] = dict(overrides or {})
    for text in sets:
        given = merge_dicts(given, parse_set_option(text))
    new_name = (given.get("model") or {}).get("name")
    if new_name is not None:
        data = switch_model(data, str(new_name))
    data = merge_dicts(data, given)
    # A flat ``model`` section (name + options) must merge option by option.
    return config_from_dict(data)
