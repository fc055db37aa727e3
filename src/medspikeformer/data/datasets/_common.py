"""Helpers shared by the layout readers: listing images and pairing them with masks by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from medspikeformer.errors import DataError

from ..base import Sample, check_nonempty_file
from ..io import IMAGE_EXTENSIONS


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else ``DataError`` describing the expected layout."""
    if not path.is_dir():
        raise DataError(f"{path}: folder not found (expected {what})")
    return path


def list_images(folder: Path, exts: Iterable[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly in ``folder`` (not hidden), sorted by name. A broken symbolic link
    with an image's name is listed too, so that reading it reports the missing file instead of
    the sample vanishing without a word."""
    exts = tuple(e.lower() for e in exts)
    return sorted(
        p
        for p in folder.iterdir()
        if (p.is_file() or (p.is_symlink() and not p.exists()))
        and not p.name.startswith(".")
        and p.suffix.lower() in exts
    )


def pair_by_name(
    images: list[Path],
    masks: list[Path],
    mask_names: Callable[[Path], list[str]],
    problems: list[str],
    mask_dir: Path,
    part: str | None = None,
    id_prefix: str = "",
) -> list[Sample]:
    """Pair each image with the first existing mask among ``mask_names(image)`` in ``mask_dir``.

    Records one problem per image without a mask, per mask without an image, and per empty file.
    """
    by_name = {m.name: m for m in masks}
    used: set[str] = set()
    samples = []
    for img in images:
        candidates = mask_names(img)
        found = next((by_name[c] for c in candidates if c in by_name), None)
        if found is None:
            problems.append(f"{img}: no mask found (expected {mask_dir / candidates[0]})")
            continue
        used.add(found.name)
        ok = check_nonempty_file(img, problems) & check_nonempty_file(found, problems)
        if ok:
            sid = id_prefix + img.stem
            samples.append(Sample(id=sid, files=(img, found), group=sid, part=part))
    for m in masks:
        if m.name not in used:
            problems.append(
                f"{m}: mask without a matching image in {images[0].parent if images else mask_dir.parent}"
            )
    return samples
