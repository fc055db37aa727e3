"""The config's model: switching the model family (``--model``), building the model, and the
one check of the training size against the model's ``size_divisor``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medspikeformer.config.coerce import model_section_to_dict
from medspikeformer.config.labels import label_options
from medspikeformer.config.schema import TrainConfig
from medspikeformer.errors import ConfigError

__all__ = [
    "SHARED_MODEL_OPTIONS",
    "build_model_from_config",
    "check_size_divisor",
    "model_options_for",
    "same_model_family",
    "switch_model",
]

#: Model options that mean the same for every model family (kept when the model is switched).
SHARED_MODEL_OPTIONS = ("in_channels",)


def same_model_family(name: str, other: str) -> bool:
    """Whether two registered models take the same constructor options (``ModelInfo.family``);
    an unknown name → ConfigError listing the registered models."""
    from medspikeformer.models import model_info

    return model_info(name).family == model_info(other).family


def model_options_for(name: str, from_name: str | None, options: Mapping[str, Any]) -> dict:
    """The options of ``from_name``'s model section that still apply to model ``name``: all of
    them within one family, only :data:`SHARED_MODEL_OPTIONS` across families (the U-Net has no
    ``num_units``, and its ``base_channels`` means another width)."""
    if from_name is None or same_model_family(name, from_name):
        return dict(options)
    return {k: v for k, v in options.items() if k in SHARED_MODEL_OPTIONS}


def switch_model(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A nested config dict whose model becomes ``name`` (``--model``): the file's model options
    are kept as :func:`model_options_for` says; across families the file's teacher mode, chosen
    for its own model, goes back to ``auto`` (the new model's registered default)."""
    out = dict(data)
    section = model_section_to_dict(out.get("model") or {})
    old = section["name"]
    if old == name:
        return out
    out["model"] = {"name": name, **model_options_for(name, old, section["options"])}
    if not same_model_family(name, old) and isinstance(out.get("teacher"), Mapping):
        out["teacher"] = {**out["teacher"], "mode": "auto"}
    return out


def build_model_from_config(config: TrainConfig, **extra: Any):
    """``create_model(config.model.name, **config.model.options)``; unknown name → ConfigError.
    ``data.labels`` supplies ``num_classes`` / ``multilabel`` (:func:`label_options`)."""
    from medspikeformer import create_model

    options = dict(config.model.options)
    if config.data.in_channels is not None:
        options.setdefault("in_channels", config.data.in_channels)
    options.update(label_options(config))
    options.update(extra)
    try:
        return create_model(config.model.name, **options)
    except TypeError as exc:
        raise ConfigError(
            f"model {config.model.name!r} does not accept the options {sorted(options)}: {exc}"
        ) from None


def check_size_divisor(size: int, divisor: int, model_name: str, key: str = "data.size") -> None:
    """A ``ConfigError`` naming ``key`` when ``size`` is not a multiple of the model's
    ``size_divisor`` (the encoder halves the image that many times over)."""
    if size % divisor:
        raise ConfigError(
            f"config value {key}={size} is not divisible by {divisor}, which model "
            f"{model_name!r} needs (size_divisor); use e.g. {max(divisor, size // divisor * divisor)}"
        )
