"""COVID-19 CT lung infection, in its two published forms.

**Slice folders** (MedSeg slices as distributed with Inf-Net): every folder ``Imgs/`` (grey JPEG
slices) that has a sibling ``GT/`` (PNG masks 0/255, same stem) under ``root`` — e.g. ``train/Imgs``
+ ``train/GT`` and ``test/Imgs`` + ``test/GT``, or Inf-Net's ``TrainingSet/LungInfection-Train/
Doctor-label/`` and ``TestingSet/LungInfection-Test/``. A folder path containing "test" / "val" /
"train" gives the official part. Sample ids: ``<folder relative to root>/<stem>``, e.g. ``train/12``.

**NIfTI volumes** (COVID-19-CT-Seg, Ma et al. 2020: ``COVID-19-CT-Seg_20cases/<case>.nii.gz`` +
``Infection_Mask/<case>.nii.gz``): every axial slice is one sample ``<case>_z<index>``; the slices of
a case share a split group. Orientation: the volume is reoriented to RAS (``nibabel.
as_closest_canonical``) and each slice shown radiologically (anterior up, patient's right on the
image's left). CT windowing: Hounsfield units are clipped to ``window`` (lung window
``(-1000, 400)`` by default) and mapped linearly to 0…255: ``v = 255 (clip(HU, lo, hi) − lo) /
(hi − lo)``. Volumes whose values already lie in 0…255 (the Radiopaedia cases of that release are
stored so) are taken as grey levels unchanged. ``infected_only=True`` keeps only slices whose mask
has foreground. Mask voxels > 0 are foreground.

``form``: ``"auto"`` (NIfTI when ``.nii``/``.nii.gz`` files are present), ``"slices"``, ``"nifti"``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medspikeformer.errors import ConfigError, DataError

from ..base import DatasetSource, Sample, ScanResult, check_nonempty_file
from ..io import IMAGE_EXTENSIONS, read_image, read_mask, to_grey
from ..registry import register_dataset
from ..volume import finite_volume, slice_geometry, volume_values
from ._common import list_images, pair_by_name

LUNG_WINDOW = (-1000.0, 400.0)
_NII = (".nii.gz", ".nii")


def _is_nii(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(_NII)


def _case_name(p: Path) -> str:
    n = p.name
    for ext in _NII:
        if n.lower().endswith(ext):
            return n[: -len(ext)]
    return p.stem


def window_ct(hu: np.ndarray, window: tuple[float, float] = LUNG_WINDOW) -> np.ndarray:
    """CT window: ``uint8 = round(255 (clip(HU, lo, hi) − lo) / (hi − lo))``."""
    lo, hi = float(window[0]), float(window[1])
    x = (np.clip(hu.astype(np.float32), lo, hi) - lo) * (255.0 / (hi - lo))
    return np.round(x).astype(np.uint8)


@functools.lru_cache(maxsize=2)
def _volume(path: str, mtime_ns: int) -> tuple[np.ndarray, bool]:
    """RAS-oriented float32 volume [X, Y, Z] and whether it is already 0…255 grey."""
    import nibabel as nib

    try:
        img = nib.as_closest_canonical(nib.load(path))
        data = volume_values(img, path)
    except DataError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable NIfTI volume ({msg})") from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3-D volume, got shape {data.shape}")
    data = finite_volume(data, path)
    grey = bool(data.min() >= 0 and data.max() <= 255)
    return data, grey


def load_volume(path: Path) -> tuple[np.ndarray, bool]:
    return _volume(str(path), path.stat().st_mtime_ns)


def axial_slice(vol: np.ndarray, z: int) -> np.ndarray:
    """Slice ``z`` of a RAS volume ``[X, Y, Z]`` as a radiological ``[rows, cols]`` image."""
    return np.ascontiguousarray(np.rot90(vol[:, :, z]))[:, ::-1].copy()


def _nii_shape(path: Path) -> tuple[int, ...]:
    import nibabel as nib

    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable NIfTI header ({msg})") from None
    return tuple(img.shape[:3])


@register_dataset
class Covid19Source(DatasetSource):
    name: ClassVar[str] = "covid19"
    has_official_split: ClassVar[bool] = True
    options: ClassVar[dict[str, Any]] = {
        "form": "auto",
        "image_dir": "COVID-19-CT-Seg_20cases",
        "mask_dir": "Infection_Mask",
        "window": LUNG_WINDOW,
        "infected_only": False,
        "threshold": 127,
    }

    def resolve_root(self, root: Path) -> Path:
        form = self.opts["form"]
        if form not in ("auto", "slices", "nifti"):
            raise ConfigError(f"covid19: form must be 'auto', 'slices' or 'nifti', got {form!r}")
        lo, hi = self.opts["window"]
        if not hi > lo:
            raise ConfigError(
                f"covid19: window must be (low, high) with high > low, got {self.opts['window']}"
            )
        if form == "auto":
            has_nii = (root / self.opts["image_dir"]).is_dir() or any(
                _is_nii(p) for p in root.rglob("*.nii*")
            )
            form = "nifti" if has_nii else "slices"
        self.form = form
        if form == "slices" and not self._slice_dirs(root):
            raise DataError(
                f"{root}: no COVID-19 slice folders found (expected Imgs/ with a sibling GT/)"
            )
        if form == "nifti":
            for d in (self.opts["image_dir"], self.opts["mask_dir"]):
                if not (root / d).is_dir():
                    raise DataError(
                        f"{root / d}: folder not found (expected {self.opts['image_dir']}/ and "
                        f"{self.opts['mask_dir']}/ with .nii.gz volumes)"
                    )
        return root

    def intensity(self) -> dict[str, Any] | None:
        """NIfTI volumes: the CT window of ``window`` (a volume already in 0…255 is taken as
        grey, by training and predict alike)."""
        return {"window": [float(v) for v in self.opts["window"]]} if self.form == "nifti" else None

    def cache_options(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "window": list(self.opts["window"]),
            "threshold": self.opts["threshold"],
        }

    @staticmethod
    def _slice_dirs(root: Path) -> list[Path]:
        found = [root] if (root / "Imgs").is_dir() and (root / "GT").is_dir() else []
        found += sorted(
            p.parent
            for p in root.rglob("Imgs")
            if p.is_dir() and (p.parent / "GT").is_dir() and p.parent != root
        )
        return found

    def scan(self) -> ScanResult:
        return self._scan_nifti() if self.form == "nifti" else self._scan_slices()

    def _scan_slices(self) -> ScanResult:
        problems: list[str] = []
        samples: list[Sample] = []
        dirs = self._slice_dirs(self.root)
        for d in dirs:
            rel = d.relative_to(self.root).as_posix()
            low = rel.lower()
            part = (
                "test"
                if "test" in low
                else "val"
                if "val" in low
                else "train"
                if "train" in low
                else None
            )
            images = list_images(d / "Imgs")
            masks = list_images(d / "GT")
            exts = [".png", *IMAGE_EXTENSIONS]
            prefix = "" if rel == "." else rel + "/"
            samples += pair_by_name(
                images,
                masks,
                lambda p, e=exts: [p.stem + x for x in e],
                problems,
                d / "GT",
                part,
                prefix,
            )
        return ScanResult(samples, problems)

    def _scan_nifti(self) -> ScanResult:
        problems: list[str] = []
        samples: list[Sample] = []
        vol_dir, mask_dir = self.root / self.opts["image_dir"], self.root / self.opts["mask_dir"]
        vols = sorted(p for p in vol_dir.iterdir() if _is_nii(p))
        masks = {_case_name(p): p for p in mask_dir.iterdir() if _is_nii(p)}
        for v in vols:
            case = _case_name(v)
            m = masks.pop(case, None)
            if m is None:
                problems.append(f"{v}: no infection mask found (expected {mask_dir / v.name})")
                continue
            if not (check_nonempty_file(v, problems) & check_nonempty_file(m, problems)):
                continue
            try:
                shape_v, shape_m = _nii_shape(v), _nii_shape(m)
            except DataError as exc:
                problems.append(str(exc))
                continue
            if shape_v != shape_m:
                problems.append(
                    f"{m}: mask shape {shape_m} differs from volume {v.name} shape {shape_v}"
                )
                continue
            if len(shape_v) != 3 or 0 in shape_v:
                problems.append(f"{v}: expected a 3-D volume with voxels, got shape {shape_v}")
                continue
            zs = range(shape_v[2])
            if self.opts["infected_only"]:
                try:
                    mvol, _ = load_volume(m)
                except DataError as exc:
                    problems.append(str(exc))
                    continue
                zs = [int(z) for z in np.flatnonzero((mvol > 0).any(axis=(0, 1)))]
            width = max(3, len(str(shape_v[2] - 1)))
            samples += [
                Sample(id=f"{case}_z{z:0{width}d}", files=(v, m), group=case, extra=(z,))
                for z in zs
            ]
        for case, m in masks.items():
            problems.append(f"{m}: infection mask without a matching volume {case} in {vol_dir}")
        return ScanResult(samples, problems)

    def slice_geometry(self, sample: Sample) -> Any:
        """NIfTI volumes: the case, the axial slice index and the mask volume's spacing."""
        if self.form == "slices":
            return None
        return slice_geometry(sample.group, sample.extra[0], sample.masks[0], axis=2)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        if self.form == "slices":
            return to_grey(read_image(sample.image)), read_mask(
                sample.masks[0], self.opts["threshold"]
            )
        vol, grey = load_volume(sample.image)
        mvol, _ = load_volume(sample.masks[0])
        z = sample.extra[0]
        sl = axial_slice(vol, z)
        img = np.round(sl).astype(np.uint8) if grey else window_ct(sl, self.opts["window"])
        return img, axial_slice(mvol, z) > 0
