"""One reader from a run's config to its data: :func:`dataset_from_config`.

The trainer, the experiment runner, ``medspikeformer evaluate`` and the inference commands all
rebuild a run's dataset through this function, so that a split is drawn the same way (same seed,
split spec, size, channels, cache and loader options) wherever it is read back.
"""

from __future__ import annotations

from typing import Any

from medspikeformer import data as data_pkg
from medspikeformer.engine.config import TrainConfig

__all__ = ["dataset_from_config", "labels_of_the_folder"]


def dataset_from_config(
    config: TrainConfig, split: str, augment: str = "none", **overrides: Any
) -> Any:
    """``build_dataset`` for split ``split`` of ``config.data`` with ``train.seed``.

    Args:
        config: the run's resolved config (``load_config``, or ``InferenceContext.config``).
        split: ``train``, ``val``, ``test`` or ``all``.
        augment: ``none`` (evaluation) or the augmentation policy (``config.data.augment``).
        overrides: keywords of ``build_dataset`` that replace the config's (``in_channels``: the
            model's, ``size``: an inference size ``(H, W)``, ...).

    ``data.in_channels`` null means 3 unless overridden; ``data.split_spec`` null means the
    dataset's own default split.
    """
    d = config.data
    kwargs: dict[str, Any] = {
        "root": d.root,
        "size": d.size,
        "in_channels": d.in_channels or 3,
        "cache_dir": d.cache_dir,
        "seed": config.train.seed,
        **d.options,
    }
    if d.split_spec is not None:
        kwargs["split_spec"] = d.split_spec
    if d.labels is not None:
        kwargs["labels"] = d.labels
    kwargs.update(overrides)
    return data_pkg.build_dataset(d.dataset, split=split, augment=augment, **kwargs)


def labels_of_the_folder(config: TrainConfig) -> dict[str, Any] | None:
    """The class mapping the dataset folder itself declares (a Decathlon / nnU-Net
    ``dataset.json``) when ``data.labels`` is not given and it names more than one foreground
    label — else ``None`` (a folder with one foreground label is the binary task either way)."""
    if config.data.labels is not None:
        return None
    from medspikeformer.data.build import build_source

    source = build_source(config.data.dataset, config.data.root, **config.data.options)
    labels = getattr(source, "labels", None)
    if not isinstance(labels, dict) or len(labels) <= 2:
        return None
    return dict(labels)
