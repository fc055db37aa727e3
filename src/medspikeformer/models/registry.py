"""Model registry (timm style): ``register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from medspikeformer.errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a builder ``fn(**overrides) -> nn.Module`` under ``fn.__name__``."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; ``overrides`` replace config values (e.g. ``timesteps=2``).

    The returned model has ``model_name`` set to ``name``, and
    ``create_model(model.model_name, **model.config)`` rebuilds the same architecture.
    Unknown names and unknown options raise :class:`~medspikeformer.errors.ConfigError`.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(list_models())}"
        ) from None
    model = builder(**overrides)
    model.model_name = name
    return model
