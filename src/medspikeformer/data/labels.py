"""Class labels of a multi-class dataset: the ``data.labels`` mapping of a config.

A *label map* stores one integer id per pixel (PNG/TIFF grey values, NIfTI voxels). The config
names the ids::

    labels: {background: 0, benign: 1, malignant: 2}        # K exclusive classes (softmax)
    labels: {whole_tumour: [1, 2, 3], core: [2, 3], enhancing: [3]}   # K regions (multi-label)

* **Classes** (every value an integer): channel ``c`` is the ``c``-th class in order of id; the
  class with the smallest id (normally 0, the background) is class 0 of the model and is left out
  of the metrics' means. Ids need not be consecutive (``{background: 0, lesion: 255}``); they are
  remapped to ``0..K−1``.
* **Regions** (every value a list of ids): channel ``c`` is 1 where the pixel's id is in the
  ``c``-th list; regions may overlap (nnU-Net's region-based training, BraTS). Id 0 is the
  background of every region unless listed.

An id found in a label map but not named here is an error (:class:`~medspikeformer.errors.DataError`
naming the file); ``medspikeformer data check`` lists them with the class frequencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medspikeformer.errors import ConfigError, DataError

__all__ = ["LabelSpec"]


@dataclass(frozen=True)
class LabelSpec:
    """The parsed ``labels:`` mapping.

    Attributes:
        names: K channel names, in channel order.
        ids: for each channel the label-map ids it covers (one id per class, several per region).
        multilabel: regions (sigmoid, ``[K, H, W]`` targets) instead of classes (softmax,
            ``[1, H, W]`` class-index targets).
    """

    names: tuple[str, ...]
    ids: tuple[tuple[int, ...], ...]
    multilabel: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def known_ids(self) -> frozenset[int]:
        """Every id a label map may hold (0 always, for regions: the background)."""
        known = {i for group in self.ids for i in group}
        return frozenset(known | ({0} if self.multilabel else set()))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str = "data.labels") -> LabelSpec:
        """Parse ``{name: id}`` (classes) or ``{name: [ids]}`` (regions); ``ConfigError`` naming
        ``where`` for anything else."""
        if not isinstance(mapping, Mapping) or len(mapping) < 2:
            raise ConfigError(f"{where}: expected a mapping of at least two names to label ids")
        lists = [isinstance(v, (list, tuple)) for v in mapping.values()]
        if any(lists) and not all(lists):
            raise ConfigError(
                f"{where}: give every name one id (classes) or every name a list of ids "
                "(regions), not a mix"
            )
        parsed: list[tuple[str, tuple[int, ...]]] = []
        for name, value in mapping.items():
            group = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            for v in group:
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
                    raise ConfigError(
                        f"{where}.{name}: label ids must be integers in 0..65535, got {v!r}"
                    )
            if not group:
                raise ConfigError(f"{where}.{name}: a region needs at least one id")
            parsed.append((str(name), group))
        if all(lists):
            return cls(tuple(n for n, _ in parsed), tuple(g for _, g in parsed), True)
        seen: dict[int, str] = {}
        for name, (i,) in parsed:
            if i in seen:
                raise ConfigError(f"{where}: id {i} is given to both {seen[i]!r} and {name!r}")
            seen[i] = name
        parsed.sort(key=lambda item: item[1][0])
        return cls(tuple(n for n, _ in parsed), tuple(g for _, g in parsed), False)

    def unknown_ids(self, label_map: np.ndarray) -> list[int]:
        """Ids in ``label_map`` that no class or region names."""
        present = np.unique(label_map)
        return [int(v) for v in present if int(v) not in self.known_ids]

    def check(self, label_map: np.ndarray, where: str) -> None:
        """``DataError`` naming ``where`` when ``label_map`` holds an id not in the mapping."""
        unknown = self.unknown_ids(label_map)
        if unknown:
            known = ", ".join(map(str, sorted(self.known_ids)))
            raise DataError(
                f"{where}: label id(s) {', '.join(map(str, unknown))} not in data.labels "
                f"(known ids: {known})"
            )

    def encode(self, label_map: np.ndarray) -> torch.Tensor:
        """Integer ``[H, W]`` ids → the training target: float32 ``[1, H, W]`` class indices
        (classes) or ``[K, H, W]`` in {0, 1} (regions). Unknown ids must be refused before
        (:meth:`check`)."""
        ids = np.asarray(label_map).astype(np.int64)
        if self.multilabel:
            planes = [np.isin(ids, group) for group in self.ids]
            return torch.from_numpy(np.stack(planes).astype(np.float32))
        lut = np.zeros(max(max(g[0] for g in self.ids), int(ids.max(initial=0))) + 1, np.float32)
        for index, (i,) in enumerate(self.ids):
            lut[i] = index
        return torch.from_numpy(lut[ids])[None]

    def frequencies(self, label_map: np.ndarray) -> dict[str, int]:
        """Pixels per class / region name in one label map."""
        ids = np.asarray(label_map)
        return {name: int(np.isin(ids, group).sum()) for name, group in zip(self.names, self.ids)}
