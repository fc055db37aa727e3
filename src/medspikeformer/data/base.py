"""The pieces every dataset shares: sample records, the source interface and the torch Dataset.

A *source* knows one published layout: ``scan()`` lists the image/mask pairs (cheap: file names and
sizes only) and ``load(sample)`` decodes one pair to ``uint8 [H,W,3|H,W]`` + ``bool [H,W]``.
``SegmentationDataset`` turns a source into training items: split selection → decode (or cache hit)
→ resize → augmentation → ``to_model_input``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from medspikeformer.errors import ConfigError, DataError
from medspikeformer.outputs import atomic_write_text

from .io import to_model_input

#: The package's one default seed: of the random split and the synthetic images (data layer) and
#: of ``train.seed`` in the training config (``medspikeformer.engine.config``).
DEFAULT_SEED = 41
#: Seeds lie in 0 … 2³² − 1: numpy's ``RandomState`` and every data worker take no other.
MAX_SEED = 2**32 - 1


def check_seed(seed: object, where: str) -> int:
    """``seed`` when it is an integer in ``0 … MAX_SEED``, else ``ConfigError`` naming ``where``."""
    from medspikeformer.errors import ConfigError

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{where}={seed!r}: a seed is an integer in 0…{MAX_SEED}")
    return seed


SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class Sample:
    """One image/mask pair as found on disk.

    ``files``: every file the pair is decoded from (image first); they key the cache.
    ``group``: samples of one group always land in the same split (e.g. slices of one CT volume).
    ``part``: the official partition ("train"/"val"/"test") when the layout defines one.
    ``extra``: loader-specific hashable detail (e.g. the slice index of a volume).
    """

    id: str
    files: tuple[Path, ...]
    group: str = ""
    part: str | None = None
    extra: tuple = ()

    @property
    def image(self) -> Path:
        return self.files[0]

    @property
    def masks(self) -> tuple[Path, ...]:
        return self.files[1:]


@dataclass
class ScanResult:
    """What ``DatasetSource.scan`` found: usable samples and one message per problem."""

    samples: list[Sample]
    problems: list[str] = field(default_factory=list)

    def duplicate_ids(self) -> list[str]:
        """Sample ids found more than once (sorted): a split could not tell them apart, so
        ``build_dataset`` refuses them and ``data check`` reports them."""
        seen: set[str] = set()
        dups = {s.id for s in self.samples if s.id in seen or seen.add(s.id)}
        return sorted(dups)


#: Ranges of loader options shared by several layouts (inclusive).
OPTION_RANGES: dict[str, tuple[int, int]] = {
    # mask threshold on the 8-bit scale: 255 would make every mask empty, < 0 every one full
    "threshold": (0, 254),
}


def check_loader_option(dataset: str, key: str, value: Any, default: Any) -> None:
    """``ConfigError`` naming the dataset and option when ``value`` is not of the default's
    kind (true/false, integer, number, text, list) or outside :data:`OPTION_RANGES`; a default
    of ``None`` leaves the check to the layout."""
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "true or false"),
        (int, "an integer"),
        (float, "a number"),
        (str, "text"),
        ((list, tuple), "a list"),
    ]
    for kind, words in kinds:
        if isinstance(default, kind):
            ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
            if kind in (int, float) and isinstance(value, bool):
                ok = False
            if not ok:
                raise ConfigError(
                    f"dataset {dataset!r}: option {key} must be {words} (got {value!r})"
                )
            break
    if key in OPTION_RANGES and isinstance(value, (int, float)):
        low, high = OPTION_RANGES[key]
        if not low <= value <= high:
            raise ConfigError(
                f"dataset {dataset!r}: option {key}={value!r} must lie in {low}…{high}"
            )


class DatasetSource:
    """Base class of one dataset layout. Subclasses set ``name`` and implement ``scan``/``load``.

    ``options``: the keyword options the loader accepts, with defaults; unknown options raise
    ``ConfigError``. Options that change decoded pixels are part of the cache key.
    """

    name: ClassVar[str] = ""
    has_official_split: ClassVar[bool] = False
    needs_root: ClassVar[bool] = True
    cacheable: ClassVar[bool] = True
    options: ClassVar[dict[str, Any]] = {}
    #: bump when decoding changes, so old cache entries are not reused
    version: ClassVar[int] = 1

    #: what :meth:`stratum` returns, for the split record (None: the layout declares no strata)
    stratum_name: ClassVar[str | None] = None

    def stratum(self, sample: Sample) -> str | None:
        """The sample's stratum for carving validation parts and folds (e.g. its class), read
        from the layout without decoding anything; ``None``: no strata."""
        return None

    def intensity(self) -> dict[str, Any] | None:
        """How this layout turns voxel values into 0…255 (a volume's window), recorded in the
        checkpoints (``PreprocessingPolicy.intensity``); ``None`` for 8-bit images."""
        return None

    def slice_geometry(self, sample: Sample) -> Any:
        """A slice of a 3-D volume: its case, index and voxel spacing
        (:class:`~medspikeformer.data.volume.SliceGeometry`), so that evaluation can score the
        case as a volume; ``None`` for a 2-D image."""
        return None

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ConfigError(
                f"dataset {self.name!r}: unknown option(s) {', '.join(unknown)} (known: {known})"
            )
        for key, value in options.items():
            check_loader_option(self.name, key, value, self.options[key])
        self.opts: dict[str, Any] = {**self.options, **options}
        if self.needs_root:
            if root is None:
                raise DataError(f"dataset {self.name!r} needs a root folder (--root DIR)")
            root = Path(root).expanduser()
            if not root.exists():
                raise DataError(f"{root}: dataset root not found")
            if not root.is_dir():
                raise DataError(f"{root}: dataset root is not a folder")
            self.root: Path | None = self.resolve_root(root)
        else:
            self.root = None

    def resolve_root(self, root: Path) -> Path:
        """Accept the documented alternatives (e.g. the folder above the dataset's own folder)."""
        return root

    def scan(self) -> ScanResult:
        raise NotImplementedError

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """Decode one pair: image ``uint8 [H,W,3]`` or ``[H,W]``, mask ``bool [H,W]``."""
        raise NotImplementedError

    def cache_options(self) -> dict[str, Any]:
        """Options that influence decoded arrays (JSON-serialisable)."""
        return {
            k: v
            for k, v in self.opts.items()
            if isinstance(v, (int, float, str, bool, list, tuple, type(None)))
        }

    def load_checked(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """``load`` plus the consistency checks every loader needs (same image/mask size)."""
        img, mask = self.load(sample)
        if img.shape[:2] != mask.shape[:2]:
            where = sample.masks[0] if sample.masks else sample.image
            raise DataError(
                f"{where}: mask size {mask.shape[1]}×{mask.shape[0]} differs from image "
                f"{sample.image.name} size {img.shape[1]}×{img.shape[0]}"
            )
        return img, mask


def check_nonempty_file(path: Path, problems: list[str]) -> bool:
    """Record a problem for a missing or 0-byte file; return whether the file is usable."""
    try:
        size = path.stat().st_size
    except OSError:
        problems.append(f"{path}: file not found")
        return False
    if size == 0:
        problems.append(f"{path}: empty file (0 bytes)")
        return False
    return True


#: Largest network input side :func:`parse_size` accepts.
MAX_SIDE = 16384


def parse_size(size: Any, where: str = "size") -> tuple[int, int]:
    """The one image-size parser: ``256``, ``[256]``, ``(H, W)`` or ``"H,W"``/``"HxW"`` →
    ``(H, W)``; anything else, or a non-positive size → ``ConfigError`` naming ``where``."""
    if isinstance(size, str):
        size = [s for s in size.replace("x", ",").split(",") if s.strip()]
    if isinstance(size, (int, float, np.integer, np.floating)) and not isinstance(size, bool):
        size = [size]
    try:
        values = [int(s) for s in size]
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: expected H or (H, W), got {size!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise ConfigError(f"{where}: expected H or (H, W), got {size!r}")
    if min(values) <= 0:
        raise ConfigError(f"{where} must be positive, got {size!r}")
    if max(values) > MAX_SIDE:
        raise ConfigError(
            f"{where} {size!r} is too large (at most {MAX_SIDE} per side: a network input that "
            "big does not fit in memory; large images are predicted in sliding windows)"
        )
    return values[0], values[1]


def as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``256`` or ``(H, W)`` → ``(H, W)``: :func:`parse_size` (kept for existing callers)."""
    return parse_size(size)


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The datasets' image resize rule to ``size = (H, W)``: area averaging when shrinking both
    sides, bilinear otherwise (returned as is when already that size)."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    shrink = img.shape[0] >= h and img.shape[1] >= w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def resize_pair(
    img: np.ndarray, mask: np.ndarray, size: tuple[int, int], *, label_map: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size = (H, W)``: image by :func:`resize_image`; mask nearest-neighbour,
    returned as ``uint8`` in {0, 1} — or, with ``label_map``, its integer ids kept (``uint8``,
    ``uint16`` when an id exceeds 255)."""
    h, w = size
    img = resize_image(img, size)
    if label_map:
        wide = mask.dtype != np.bool_ and int(mask.max(initial=0)) > 255
        m = mask.astype(np.uint16 if wide else np.uint8)
    else:
        m = mask.astype(np.uint8)
    if m.shape[:2] != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
    if label_map:
        return np.ascontiguousarray(img), np.ascontiguousarray(m)
    return np.ascontiguousarray(img), (m > 0).astype(np.uint8)


class SegmentationDataset(Dataset):
    """Items ``{"image": float32 [C,H,W] in [0,1], "mask": float32 [1,H,W] in {0,1}, "id": str}``.

    With ``labels`` (a :class:`~medspikeformer.data.labels.LabelSpec`) masks are label maps:
    ``"mask"`` holds class indices ``float32 [1,H,W]`` (classes) or ``[K,H,W]`` in {0,1}
    (regions), and an id the mapping does not name is a ``DataError`` naming the mask file.

    Attributes: ``samples`` (the selected pairs), ``split_info`` (JSON-serialisable: dataset, root,
    spec, seed, ids per split, skipped pairs), ``skipped`` (``[(id, message)]`` when
    ``on_error="skip"``).
    """

    def __init__(
        self,
        source: DatasetSource,
        split: str,
        size: tuple[int, int],
        split_ids: dict[str, list[str]],
        split_info: dict[str, Any],
        augment: Any,
        in_channels: int,
        cache: Any,
        samples: list[Sample],
        skipped: list[tuple[str, str]] | None = None,
        labels: Any = None,
    ) -> None:
        self.source = source
        self.labels = labels
        self.split = split
        self.size = size
        self.samples = samples
        self.in_channels = in_channels
        self.augment = augment
        self.cache = cache
        self.split_ids = split_ids
        self.skipped = skipped or []
        self.split_info = split_info
        self._aug_seed: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source.name!r}, split={self.split!r}, "
            f"n={len(self)}, size={self.size})"
        )

    def load_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded and resized pair (from the cache when present): ``uint8`` image, ``uint8`` mask
        in {0,1} (label maps: integer ids, checked against ``labels``); no augmentation."""
        sample = self.samples[index]
        label_map = self.labels is not None
        hit = None
        if self.cache is not None and self.source.cacheable:
            hit = self.cache.get(self.source, sample, self.size, label_map)
        if hit is not None:
            img, mask = hit
        else:
            img, mask = self.source.load_checked(sample)
            img, mask = resize_pair(img, mask, self.size, label_map=label_map)
            if self.cache is not None and self.source.cacheable:
                self.cache.put(self.source, sample, self.size, img, mask, label_map)
        if self.labels is not None:
            self.labels.check(mask, str(sample.masks[0] if sample.masks else sample.image))
        return img, mask

    def _seed_augment(self) -> None:
        # One seed per process and per epoch of a DataLoader worker: torch.initial_seed() differs
        # between workers and between epochs, and follows torch.manual_seed in the main process.
        seed = torch.initial_seed() % 2**32
        if seed != self._aug_seed:
            self.augment.set_random_seed(int(seed))
            self._aug_seed = seed

    def __getitem__(self, index: int) -> dict[str, Any]:
        img, mask = self.load_arrays(index)
        if self.augment is not None:
            self._seed_augment()
            out = self.augment(image=img, mask=mask)
            img, mask = out["image"], out["mask"]
        if self.labels is not None:
            target = self.labels.encode(mask)
        else:
            target = torch.from_numpy((np.asarray(mask) > 0).astype(np.float32)).unsqueeze(0)
        return {
            "image": to_model_input(img, self.in_channels),
            "mask": target,
            "id": self.samples[index].id,
        }

    def save_split(self, path: str | Path) -> Path:
        """Write ``split_info`` as JSON (reusable as ``split_spec=path``)."""
        return atomic_write_text(path, json.dumps(self.split_info, indent=1) + "\n")
