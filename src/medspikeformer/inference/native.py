"""Scores at each image's own size (``evaluate``'s default): the prediction brought back to the
size of the image it came from, the ground truth read at that size, untouched.

The model sees what validation feeds it (the image resized to the training size); its
probabilities are resized back exactly as ``predict --mode resize`` does
(:func:`~medspikeformer.inference.resample.native_labels`), so the score is that of the masks
``predict`` writes. The truth is decoded again from the dataset's files
(``DatasetSource.load_checked``) without any resizing.

Slices of a 3-D case (a NIfTI volume: Decathlon, COVID-19) are scored per **case**: the slices
are stacked into the case's volume, its confusion counts (Dice, IoU) and its HD95 / NSD are
those of the volume, the distances in the voxel spacing of the NIfTI header. 2-D images are
scored per image with spacing 1 (pixels).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch

from medspikeformer.inference.postprocess import largest_component_labels
from medspikeformer.inference.resample import label_planes, native_labels, truth_planes
from medspikeformer.metrics.boundary import boundary_row

__all__ = ["NativeScorer"]

#: Tile side of the 8-bit resize path of :func:`native_labels` (predict's default ``--block``).
NATIVE_BLOCK = 2048


class NativeScorer:
    """Feeds ``metrics`` (a :class:`~medspikeformer.metrics.SegmentationMetrics`) with native-size
    masks, one row per 2-D image or per 3-D case.

    Args:
        dataset: the :class:`~medspikeformer.data.base.SegmentationDataset` evaluated, in order.
        metrics: the accumulator; a case is one "image" of it (its slices stacked as rows).
        num_classes, activation, threshold: how probabilities become labels.
        boundary: HD95 / NSD per image or case (binary models).
        largest_component: keep each class's largest connected component (3-D: of the case).
    """

    def __init__(
        self,
        dataset: Any,
        metrics: Any,
        *,
        num_classes: int,
        activation: str,
        threshold: float,
        boundary: bool,
        largest_component: bool = False,
        class_names: list[str] | None = None,
    ) -> None:
        self.dataset = dataset
        self.metrics = metrics
        self.k = num_classes
        self.activation = activation
        self.threshold = threshold
        self.boundary = boundary
        self.class_names = class_names
        self.lcc = largest_component
        source = dataset.source
        self.geometry = [source.slice_geometry(s) for s in dataset.samples]
        self.remaining: dict[str, int] = defaultdict(int)
        for g in self.geometry:
            if g is not None:
                self.remaining[g.case] += 1
        self.pending: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = defaultdict(list)
        #: per row id: ``size`` (``HxW`` / ``DxHxW``) and ``spacing``
        self.extra: dict[str, dict[str, Any]] = {}
        #: per row id: :func:`~medspikeformer.metrics.boundary.boundary_row`
        self.boundaries: dict[str, dict[str, float | None]] = {}

    @property
    def per(self) -> str:
        """``case`` when the samples are slices of volumes, else ``image``."""
        return "case" if any(g is not None for g in self.geometry) else "image"

    @property
    def unit(self) -> str:
        """The unit of HD95: ``mm`` (NIfTI spacing) for cases, ``px`` for 2-D images."""
        return "mm" if self.per == "case" else "px"

    def add(self, index: int, probs: torch.Tensor) -> None:
        """Score sample ``index`` from its ``[K, h, w]`` training-size probabilities."""
        ds = self.dataset
        sample = ds.samples[index]
        _, mask = ds.source.load_checked(sample)
        if ds.labels is not None:
            ds.labels.check(mask, str(sample.masks[0] if sample.masks else sample.image))
            target = ds.labels.encode(mask).numpy()
        else:
            target = (np.asarray(mask) > 0)[None].astype(np.float32)
        labels = native_labels(probs, mask.shape[:2], self.activation, self.threshold, NATIVE_BLOCK)
        geom = self.geometry[index]
        if geom is None:
            self._score(sample.id, labels, target, None)
            return
        self.pending[geom.case].append((geom.index, labels, target))
        self.remaining[geom.case] -= 1
        if self.remaining[geom.case] == 0:
            slices = sorted(self.pending.pop(geom.case), key=lambda s: s[0])
            self._score_case(geom.case, slices, geom.spacing)

    def _score_case(
        self,
        case: str,
        slices: list[tuple[int, np.ndarray, np.ndarray]],
        spacing: tuple[float, float, float],
    ) -> None:
        """Stack a case's slices into ``[D, H, W]`` (slices not evaluated, e.g. under the
        ``foreground_only`` option, are empty in both) and score the volume."""
        first = slices[0][0]
        depth = slices[-1][0] - first + 1
        h, w = slices[0][1].shape
        labels = np.zeros((depth, h, w), slices[0][1].dtype)
        target = np.zeros((slices[0][2].shape[0], depth, h, w), np.float32)
        for z, lab, tgt in slices:
            labels[z - first], target[:, z - first] = lab, tgt
        self._score(case, labels, target, spacing)

    def _score(
        self,
        row_id: str,
        labels: np.ndarray,
        target: np.ndarray,
        spacing: tuple[float, ...] | None,
    ) -> None:
        """One row: ``labels`` ``[*S]`` (label_image's encoding), ``target`` ``[Kt, *S]``."""
        if self.lcc:
            labels = largest_component_labels(labels, self.k, self.activation)
        planes = label_planes(labels, self.k, self.activation)
        width = labels.shape[-1]
        # a volume is one "image" of the accumulator: its slices stacked as rows
        pred = torch.from_numpy(planes.reshape(planes.shape[0], -1, width))[None]
        truth = torch.from_numpy(target.reshape(target.shape[0], -1, width))[None]
        self.metrics.update(pred, truth, [row_id])
        row: dict[str, Any] = {
            "size": "x".join(str(n) for n in labels.shape),
            "spacing": "x".join(f"{v:g}" for v in spacing) if spacing else "1",
        }
        if self.boundary:
            self.boundaries[row_id] = boundary_row(
                planes > 0,
                truth_planes(target, self.k, self.activation),
                self.metrics.scored,
                self.class_names,
                spacing=spacing,
            )
        self.extra[row_id] = row

    def finish(self) -> None:
        """Every case must have been completed (all its slices seen)."""
        if self.pending:
            case = next(iter(self.pending))
            raise RuntimeError(f"case {case}: not all of its slices were evaluated")
