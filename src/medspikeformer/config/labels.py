"""Label options: the class mapping of ``data.labels`` and the model options it implies."""

from __future__ import annotations

from typing import Any

from medspikeformer.config.schema import TrainConfig
from medspikeformer.errors import ConfigError

__all__ = ["label_options", "label_spec"]


def label_spec(config: TrainConfig) -> Any:
    """The parsed ``data.labels`` (a ``LabelSpec``), or ``None`` for a binary run."""
    if config.data.labels is None:
        return None
    from medspikeformer.data.labels import LabelSpec

    return LabelSpec.from_mapping(config.data.labels)


def label_options(config: TrainConfig) -> dict[str, Any]:
    """The model options ``data.labels`` implies: ``num_classes`` (and ``multilabel`` for
    regions); empty for a binary run. A model section that says otherwise → ConfigError."""
    spec = label_spec(config)
    if spec is None:
        return {}
    implied: dict[str, Any] = {"num_classes": spec.num_classes}
    if spec.multilabel:
        implied["multilabel"] = True
    for key, value in implied.items():
        given = config.model.options.get(key)
        if given is not None and given != value:
            raise ConfigError(
                f"config value model.{key}={given!r} disagrees with data.labels "
                f"({spec.num_classes} {'regions' if spec.multilabel else 'classes'}: "
                f"{', '.join(spec.names)}); leave model.{key} out"
            )
    return implied
