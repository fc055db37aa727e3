"""Checks every NIfTI reader applies to a decoded volume (datasets and ``predict`` alike).

* a volume without voxels (a zero-slice file) → ``DataError`` naming the file;
* non-finite voxels (NaN, ±Inf) are replaced by the volume's lowest finite value — they show as
  the window's low end (black) — with one warning naming the file and the count. One NaN used to
  make the percentile window NaN (every slice decoded to zeros) or move a 0…255 volume to the lung
  window; with the replacement the window and the grey/HU decision see the finite voxels only;
* a label volume must be 3-D (``label_volume``);
* the voxel values are read as float32 in one place (``volume_values``): complex voxels are
  refused (``get_fdata`` silently kept the real part) and so are values beyond float32's range
  (the cast turned them into infinities with a raw numpy warning).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medspikeformer.errors import DataError

__all__ = ["SliceGeometry", "finite_volume", "label_volume", "slice_geometry", "volume_values"]


def volume_values(image: Any, path: str | Path) -> np.ndarray:
    """The voxels of a loaded NIfTI ``image`` (nibabel) as float32, its scaling applied.

    Complex voxels and values float32 cannot hold → ``DataError`` naming ``path``; any other
    read failure propagates to the caller's "unreadable" line."""
    dtype = np.dtype(image.get_data_dtype())
    if dtype.kind == "c":
        raise DataError(f"{path}: complex-valued voxels ({dtype}); expected real intensities")
    try:
        with np.errstate(over="raise"):
            return np.asarray(image.get_fdata(dtype=np.float32))
    except FloatingPointError:
        raise DataError(f"{path}: voxel values beyond the float32 range (about ±3.4e38)") from None


def finite_volume(data: np.ndarray, path: str | Path) -> np.ndarray:
    """``data`` with every non-finite voxel set to the lowest finite value (a copy only when
    needed); ``DataError`` when it has no voxel or no finite voxel."""
    if data.size == 0:
        raise DataError(f"{path}: volume has no voxels (shape {tuple(data.shape)})")
    finite = np.isfinite(data)
    if finite.all():
        return data
    if not finite.any():
        raise DataError(f"{path}: volume holds no finite value (all NaN or infinite)")
    bad = int(data.size - np.count_nonzero(finite))
    low = float(data[finite].min())
    warnings.warn(
        f"{path}: {bad} non-finite voxel(s) (NaN or infinite) read as the lowest value {low:g}",
        stacklevel=2,
    )
    return np.where(finite, data, np.asarray(low, dtype=data.dtype))


def label_volume(data: np.ndarray, path: str | Path) -> np.ndarray:
    """A label volume as ``[X, Y, Z]`` (a trailing axis of one squeezed); anything else →
    ``DataError`` (a 4-D label map has no single label per voxel)."""
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(
            f"{path}: label volume of shape {tuple(data.shape)} (expected 3-D, one label per voxel)"
        )
    if data.size == 0:
        raise DataError(f"{path}: volume has no voxels (shape {tuple(data.shape)})")
    return data


@dataclass(frozen=True)
class SliceGeometry:
    """Where a 2-D sample lies in its 3-D case: ``case`` (the split group), ``index`` along the
    slice axis and the voxel ``spacing`` of the stacked case ``[D, rows, cols]`` (slice axis,
    then the rows and columns of the slice as the loaders show it), in the NIfTI header's units
    (normally mm)."""

    case: str
    index: int
    spacing: tuple[float, float, float]


@functools.lru_cache(maxsize=64)
def _canonical_zooms(path: str) -> tuple[float, float, float]:
    import nibabel as nib

    try:
        affine = nib.as_closest_canonical(nib.load(path)).affine
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable NIfTI volume ({msg})") from None
    zooms = nib.affines.voxel_sizes(affine)
    return float(zooms[0]), float(zooms[1]), float(zooms[2])


def slice_geometry(case: str, index: int, path: str | Path, axis: int = 2) -> SliceGeometry:
    """The :class:`SliceGeometry` of slice ``index`` along ``axis`` of the RAS-reoriented volume
    at ``path`` shown as the loaders show it (``np.rot90`` of the slice, then mirrored: the rows
    run along the second remaining axis, the columns along the first)."""
    zooms = _canonical_zooms(str(path))
    first, second = (a for a in range(3) if a != axis)
    return SliceGeometry(case, int(index), (zooms[axis], zooms[second], zooms[first]))
