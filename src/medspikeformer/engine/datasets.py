"""One reader from a run's config to its data: :func:`dataset_from_config`, and the training
loop's loaders: :func:`build_loader`.

The trainer, the experiment runner, ``medspikeformer evaluate`` and the inference commands all
rebuild a run's dataset through this function, so that a split is drawn the same way (same seed,
split spec, size, channels, cache and loader options) wherever it is read back.

Loader workers (docs/training.md, "Loader workers") are started once per run
(``persistent_workers``), not once per epoch; their batches stay exact on resume because the
sampler hands every index with its epoch's seed and a worker re-seeds itself when that seed
changes, so what a worker draws in epoch *e* depends on (seed, e, rank, worker) alone and not on
the epochs the process ran before.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from medspikeformer import data as data_pkg
from medspikeformer.engine.config import TrainConfig

__all__ = [
    "EpochSeededDataset",
    "EpochSeededSampler",
    "build_loader",
    "dataset_from_config",
    "labels_of_the_folder",
    "resolve_num_workers",
]

#: ``data.num_workers: auto`` on CUDA: at most this many workers (fewer on a smaller host).
AUTO_WORKERS_CUDA = 4


def resolve_num_workers(value: int | str, device: torch.device) -> int:
    """``data.num_workers``: an integer as given; ``auto`` → ``min(4, CPUs)`` on CUDA (the
    loader must keep up with the GPU), 0 elsewhere (on a CPU the workers compete with the step
    for the same cores)."""
    if value != "auto":
        return int(value)
    if device.type != "cuda":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(AUTO_WORKERS_CUDA, cpus or 1)


class EpochSeededSampler(Sampler[tuple[int, int]]):
    """``inner``'s indices, each as ``(seed_of(inner.epoch), index)``: ``inner`` is a
    DistributedSampler whose ``set_epoch`` the loop calls; it is read in the main process when
    an epoch's iteration starts."""

    def __init__(self, inner: Any, seed_of: Any) -> None:
        self.inner, self.seed_of = inner, seed_of

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        seed = int(self.seed_of(self.inner.epoch))
        return ((seed, int(i)) for i in self.inner)


class EpochSeededDataset(Dataset):
    """``dataset[index]`` for ``(epoch seed, index)``; inside a loader worker a new epoch seed
    first re-seeds torch, numpy and ``random`` to ``seed + worker id`` (the augmentation seeds
    itself from ``torch.initial_seed()``). In the main process nothing is re-seeded: the loop
    seeds it (and the model's draws must not be disturbed)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._seed: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        seed, index = key
        info = get_worker_info()
        if info is not None and seed != self._seed:
            self._seed = seed
            worker_seed = (seed + info.id) % 2**32
            torch.manual_seed(worker_seed)
            np.random.seed(worker_seed)
            random.seed(worker_seed)
        return self.dataset[index]


def build_loader(
    dataset: Any,
    *,
    batch_size: int,
    sampler: Any,
    num_workers: int,
    device: torch.device,
    seed_of: Any = None,
    drop_last: bool = False,
    persistent: bool = True,
) -> DataLoader:
    """A training-loop DataLoader: pinned memory on CUDA, workers kept across epochs when
    ``num_workers > 0`` (``persistent=False`` re-forks them every epoch: only to measure what
    keeping them saves, gpu_check part 5); with ``seed_of`` (epoch → seed) the batches of an
    epoch depend only on that seed (:class:`EpochSeededSampler`), which exact resume needs with
    persistent workers."""
    if seed_of is not None and num_workers > 0:
        dataset, sampler = EpochSeededDataset(dataset), EpochSeededSampler(sampler, seed_of)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=persistent and num_workers > 0,
        drop_last=drop_last,
    )


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
        "validation": d.validation,
        "val_fraction": d.val_fraction,
        "folds": d.folds,
        "fold": d.fold,
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
