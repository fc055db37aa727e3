"""Name → dataset source class. Loaders register themselves with ``@register_dataset``."""

from __future__ import annotations

import importlib

from medspikeformer.errors import ConfigError

from .base import DatasetSource

_REGISTRY: dict[str, type[DatasetSource]] = {}
_MODULES = (
    "medspikeformer.data.synthetic",
    "medspikeformer.data.datasets.isic2018",
    "medspikeformer.data.datasets.kvasir",
    "medspikeformer.data.datasets.busi",
    "medspikeformer.data.datasets.monuseg",
    "medspikeformer.data.datasets.covid19",
    "medspikeformer.data.datasets.folder",
    "medspikeformer.data.datasets.decathlon",
)


def register_dataset(cls: type[DatasetSource]) -> type[DatasetSource]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    from .synthetic import SyntheticSource

    _REGISTRY.setdefault("synthetic", SyntheticSource)


def list_datasets() -> list[str]:
    """Names accepted by ``build_dataset``."""
    _load_all()
    return sorted(_REGISTRY)


def get_source_class(name: str) -> type[DatasetSource]:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r} (known: {', '.join(sorted(_REGISTRY))})"
        ) from None
