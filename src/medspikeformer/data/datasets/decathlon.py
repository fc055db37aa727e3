"""nnU-Net raw / Medical Segmentation Decathlon layout, as 2-D slices of its 3-D volumes.

Layout (``root`` is the dataset folder, e.g. ``Dataset004_Hippocampus`` or ``Task04_Hippocampus``)::

    dataset.json                       labels, channel names, file ending
    imagesTr/<case>_0000.nii.gz        nnU-Net v2: one file per channel (_0000, _0001, …)
    imagesTr/<case>.nii.gz             Decathlon v1: one (3-D, or 4-D multi-channel) volume
    labelsTr/<case>.nii.gz             integer label map, same grid

``dataset.json``: ``labels`` is ``{name: id}`` (v2, regions ``{name: [ids]}``) or
``{"0": "background", …}`` (v1); ``channel_names`` (v2) or ``modality`` (v1) names the input
channels. ``file_ending`` (v2, default ``.nii.gz``) may be ``.png`` / ``.tif``: 2-D cases, one
sample each. ``imagesTs/`` has no labels and is not read.

Every slice along ``axis`` (default 2, axial in RAS orientation as for the COVID-19 volumes) of
a 3-D case is one sample ``<case>_z<index>``; all slices of a case share a split group, so splits
are case-level. Options: ``channels`` (indices or names of the channels used as the image: one →
grey, three → RGB; default the first), ``window`` (``[lo, hi]`` intensity window mapped to
0…255; default per case the 0.5–99.5 percentile range, nnU-Net's foreground clipping without its
z-score), ``foreground_only`` (keep only slices with a labelled voxel). The mask is the label
map as stored (integer ids): name them with ``data.labels`` (the ``dataset.json`` labels are
what ``data check`` compares against); without ``data.labels`` any id > 0 is foreground.
A sample's files are ``(first channel, label, other channels…)``: the label is ``masks[0]``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medspikeformer.errors import ConfigError, DataError

from ..base import DatasetSource, Sample, ScanResult, check_nonempty_file
from ..io import read_image, read_label_map, to_grey
from ..registry import register_dataset
from ..volume import finite_volume, label_volume, slice_geometry, volume_values

_NII = (".nii.gz", ".nii")


def read_dataset_json(root: Path) -> dict[str, Any]:
    """``root/dataset.json`` as a dict; missing or malformed → ``DataError`` naming it."""
    path = root / "dataset.json"
    try:
        data = json.loads(path.read_text())
    except OSError:
        raise DataError(
            f"{path}: file not found (an nnU-Net / Decathlon dataset has one)"
        ) from None
    except ValueError as exc:
        raise DataError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def dataset_labels(meta: dict[str, Any], where: str) -> dict[str, Any]:
    """``dataset.json`` labels as the ``data.labels`` form: ``{name: id}`` or ``{name: [ids]}``
    (v1's ``{"0": "background"}`` is turned round)."""
    raw = meta.get("labels")
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{where}: dataset.json has no 'labels' mapping")
    if all(isinstance(v, str) for v in raw.values()):  # v1: {"0": "background", ...}
        try:
            return {name: int(key) for key, name in raw.items()}
        except ValueError:
            raise DataError(f"{where}: dataset.json labels keys must be integer ids") from None
    return dict(raw)


def channel_names(meta: dict[str, Any]) -> list[str]:
    """Input channel names in order (``channel_names`` of v2, ``modality`` of v1)."""
    raw = meta.get("channel_names") or meta.get("modality") or {"0": "image"}
    return [str(raw[k]) for k in sorted(raw, key=lambda k: int(k))]


@functools.lru_cache(maxsize=4)
def _volume(path: str, mtime_ns: int) -> np.ndarray:
    """RAS-oriented float32 ``[X, Y, Z]`` or ``[X, Y, Z, C]`` (Decathlon v1 multi-channel)."""
    import nibabel as nib

    try:
        data = volume_values(nib.as_closest_canonical(nib.load(path)), path)
    except DataError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable NIfTI volume ({msg})") from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (3, 4):
        raise DataError(f"{path}: expected a 3-D (or 4-D multi-channel) volume, got {data.shape}")
    return finite_volume(data, path)


def load_volume(path: Path) -> tuple[np.ndarray, None]:
    """The volume at ``path`` (cached by path and modification time)."""
    return _volume(str(path), path.stat().st_mtime_ns), None


PERCENTILE_RANGE = (0.5, 99.5)
"""The default window of a volume: this range of its own voxel values (nnU-Net's foreground
clipping, over the whole case)."""


@functools.lru_cache(maxsize=4)
def _percentiles(path: str, mtime_ns: int) -> tuple[float, float]:
    vol, _ = load_volume(Path(path))
    lo, hi = np.percentile(vol, PERCENTILE_RANGE)  # over all channels of a v1 4-D volume
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    x = (np.clip(values.astype(np.float32), lo, hi) - lo) * (255.0 / (hi - lo))
    return np.round(x).astype(np.uint8)


def _slice(vol: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice ``index`` of ``vol`` along ``axis``, shown radiologically for the axial axis (as
    ``covid19.axial_slice``)."""
    sl = np.take(vol, index, axis=axis)
    return np.ascontiguousarray(np.rot90(sl)[:, ::-1])


@register_dataset
class DecathlonSource(DatasetSource):
    name: ClassVar[str] = "decathlon"
    options: ClassVar[dict[str, Any]] = {
        "channels": [0],
        "window": None,
        "axis": 2,
        "foreground_only": False,
    }

    def resolve_root(self, root: Path) -> Path:
        meta = read_dataset_json(root)
        for d in ("imagesTr", "labelsTr"):
            if not (root / d).is_dir():
                raise DataError(f"{root / d}: folder not found (nnU-Net / Decathlon layout)")
        self.meta = meta
        self.labels = dataset_labels(meta, str(root / "dataset.json"))
        self.channel_names = channel_names(meta)
        self.ending = str(meta.get("file_ending", ".nii.gz"))
        self.is_volume = self.ending.lower() in _NII
        self.channel_index = self._channels(root)
        if self.opts["axis"] not in (0, 1, 2):
            raise ConfigError(f"decathlon: axis must be 0, 1 or 2, got {self.opts['axis']!r}")
        window = self.opts["window"]
        if window is not None and not (len(window) == 2 and window[1] > window[0]):
            raise ConfigError(
                f"decathlon: window must be [low, high] with high > low, got {window}"
            )
        return root

    def _channels(self, root: Path) -> list[int]:
        wanted = self.opts["channels"]
        wanted = [wanted] if isinstance(wanted, (int, str)) else list(wanted)
        if len(wanted) not in (1, 3):
            raise ConfigError(f"decathlon: channels must name 1 or 3 channels, got {wanted}")
        out = []
        for c in wanted:
            if isinstance(c, str) and c in self.channel_names:
                out.append(self.channel_names.index(c))
            elif isinstance(c, int) and 0 <= c < len(self.channel_names):
                out.append(c)
            else:
                raise ConfigError(
                    f"{root / 'dataset.json'}: no channel {c!r} (channels: "
                    f"{', '.join(f'{i}={n}' for i, n in enumerate(self.channel_names))})"
                )
        return out

    def cache_options(self) -> dict[str, Any]:
        return {
            "channels": self.channel_index,
            "window": self.opts["window"],
            "axis": self.opts["axis"],
        }

    def _case(self, path: Path) -> str:
        return path.name[: -len(self.ending)]

    def _image_files(self, case: str) -> tuple[Path, ...] | None:
        """The files of the chosen channels (v2 ``_XXXX`` files, else the one v1 volume)."""
        folder = self.root / "imagesTr"
        v2 = [folder / f"{case}_{c:04d}{self.ending}" for c in self.channel_index]
        if all(p.is_file() for p in v2):
            return tuple(dict.fromkeys(v2))
        v1 = folder / f"{case}{self.ending}"
        return (v1,) if v1.is_file() else None

    def scan(self) -> ScanResult:
        problems: list[str] = []
        samples: list[Sample] = []
        labels = sorted(
            p
            for p in (self.root / "labelsTr").iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name.endswith(self.ending)
        )
        for lab in labels:
            case = self._case(lab)
            images = self._image_files(case)
            if images is None:
                problems.append(
                    f"{lab}: no image for case {case} (expected "
                    f"{self.root / 'imagesTr' / f'{case}_0000{self.ending}'})"
                )
                continue
            if not all(check_nonempty_file(p, problems) for p in (*images, lab)):
                continue
            files = (images[0], lab, *images[1:])
            if not self.is_volume:
                samples.append(Sample(id=case, files=files, group=case))
                continue
            try:
                mvol = label_volume(load_volume(lab)[0], lab)
                shape = load_volume(images[0])[0].shape
            except DataError as exc:
                problems.append(str(exc))
                continue
            if shape[:3] != mvol.shape[:3]:
                problems.append(
                    f"{lab}: label shape {mvol.shape[:3]} differs from image {shape[:3]}"
                )
                continue
            axis = self.opts["axis"]
            n = mvol.shape[axis]
            if self.opts["foreground_only"]:
                others = tuple(a for a in range(3) if a != axis)
                zs = [int(z) for z in np.flatnonzero((mvol > 0).any(axis=others))]
            else:
                zs = list(range(n))
            width = max(3, len(str(n - 1)))
            samples += [
                Sample(id=f"{case}_z{z:0{width}d}", files=files, group=case, extra=(z,)) for z in zs
            ]
        return ScanResult(samples, problems)

    def _channel_planes(self, sample: Sample) -> list[np.ndarray]:
        """The chosen channels of one sample as float arrays (slices for volumes)."""
        files = (sample.files[0], *sample.files[2:])
        if not self.is_volume:
            return [to_grey(read_image(p)).astype(np.float32) for p in files]
        z, axis = sample.extra[0], self.opts["axis"]
        planes = []
        for i, c in enumerate(self.channel_index):
            path = files[i] if len(files) > 1 else files[0]
            vol, _ = load_volume(path)
            if vol.ndim == 4:  # v1: channels last in one 4-D volume
                vol = vol[..., c]
            planes.append(_slice(vol, axis, z))
        return planes

    def slice_geometry(self, sample: Sample) -> Any:
        """Volumes: the case, the slice index along ``axis`` and the label volume's spacing."""
        if not self.is_volume:
            return None
        return slice_geometry(sample.group, sample.extra[0], sample.masks[0], self.opts["axis"])

    def intensity(self) -> dict[str, Any] | None:
        """Volumes: the ``window`` option, else each case's 0.5–99.5 percentile range."""
        if not self.is_volume:
            return None
        if self.opts["window"] is not None:
            return {"window": [float(v) for v in self.opts["window"]]}
        return {"window": "percentile", "range": list(PERCENTILE_RANGE)}

    def _window(self, sample: Sample, index: int) -> tuple[float, float]:
        if self.opts["window"] is not None:
            return float(self.opts["window"][0]), float(self.opts["window"][1])
        files = (sample.files[0], *sample.files[2:])
        path = files[index] if len(files) > 1 else files[0]
        return _percentiles(str(path), path.stat().st_mtime_ns)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        planes = self._channel_planes(sample)
        if self.is_volume:
            planes = [_to_uint8(p, *self._window(sample, i)) for i, p in enumerate(planes)]
            mvol = label_volume(load_volume(sample.masks[0])[0], sample.masks[0])
            raw = _slice(mvol, self.opts["axis"], sample.extra[0])
            if not np.array_equal(raw, np.round(raw)) or raw.min(initial=0) < 0:
                raise DataError(
                    f"{sample.masks[0]}: label map holds non-integer or negative values"
                )
            label = np.round(raw).astype(np.uint16 if raw.max(initial=0) > 255 else np.uint8)
        else:
            planes = [np.round(p).astype(np.uint8) for p in planes]
            label = read_label_map(sample.masks[0])
        img = planes[0] if len(planes) == 1 else np.stack(planes, axis=-1)
        return np.ascontiguousarray(img), label
