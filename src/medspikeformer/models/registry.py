"""Model registry (timm style): ``register_model``, ``create_model``, ``list_models``, ``model_info``.

Besides the builder, a registration records what the training recipe needs to know about a model
without building it (:class:`ModelInfo`): its ``family`` (models of one family share constructor
options, so an experiment's shared model section carries over between them) and its
``default_teacher`` (``teacher.mode: auto`` resolves to it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medspikeformer.errors import ConfigError
from medspikeformer.models.base import SegmentationModel

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model name.

    Attributes:
        name: registry name.
        builder: ``builder(**overrides) -> SegmentationModel``.
        family: models of one family take the same constructor options (default: ``name``).
        default_teacher: what ``teacher.mode: auto`` means for it: ``joint`` or ``none``.
    """

    name: str
    builder: Callable[..., SegmentationModel]
    family: str
    default_teacher: str = "none"


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    fn: Callable[..., SegmentationModel] | None = None,
    *,
    family: str | None = None,
    default_teacher: str = "none",
) -> Any:
    """Decorator: register a builder ``fn(**overrides) -> SegmentationModel`` under
    ``fn.__name__``; plain ``@register_model`` or ``@register_model(family=..., default_teacher=...)``.
    """
    if default_teacher not in ("joint", "none"):
        raise ValueError(f"default_teacher must be 'joint' or 'none', got {default_teacher!r}")

    def register(builder: Callable[..., SegmentationModel]) -> Callable[..., SegmentationModel]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, builder, family or name, default_teacher)
        return builder

    return register(fn) if fn is not None else register


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The registration of ``name``; an unknown name → ConfigError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(list_models())}"
        ) from None


def create_model(name: str, **overrides: Any) -> SegmentationModel:
    """Build a registered model; ``overrides`` replace config values (e.g. ``timesteps=2``).

    The returned model has ``model_name`` set to ``name``, and
    ``create_model(model.model_name, **model.config)`` rebuilds the same architecture.
    Unknown names and unknown options raise :class:`~medspikeformer.errors.ConfigError`; a
    builder that returns anything but a :class:`SegmentationModel` is a bug (``TypeError``).
    """
    model = model_info(name).builder(**overrides)
    if not isinstance(model, SegmentationModel):
        raise TypeError(
            f"the builder of model {name!r} returned {type(model).__name__}, not a "
            "SegmentationModel (models/base.py)"
        )
    model.model_name = name
    return model
