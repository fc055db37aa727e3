"""Looking at image files before decoding them: which files are inputs, their size from the
header, and how much memory the machine has for them.

Used by ``predict`` (and ``explain``) to refuse a too-large image with a ``DataError`` naming the
file instead of risking an out-of-memory kill: the header gives ``H × W`` (or the NIfTI volume
shape) without reading pixels, and :func:`available_memory` the budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from medspikeformer.errors import DataError

from .io import IMAGE_EXTENSIONS

__all__ = [
    "IMAGE_SUFFIXES",
    "NIFTI_SUFFIXES",
    "available_memory",
    "expand_inputs",
    "is_nifti",
    "is_supported",
    "output_stem",
    "pil_pixel_limit",
    "probe_shape",
]

IMAGE_SUFFIXES = IMAGE_EXTENSIONS
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: Path) -> bool:
    """True for ``.nii`` / ``.nii.gz`` files."""
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def is_supported(path: Path) -> bool:
    """True for the image and NIfTI types ``predict`` reads."""
    return is_nifti(path) or path.suffix.lower() in IMAGE_SUFFIXES


def output_stem(path: Path) -> str:
    """File name without its image extension (``a.nii.gz`` → ``a``)."""
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def expand_inputs(
    paths: Sequence[str | Path], recursive: bool = False, skipped: list[str] | None = None
) -> list[Path]:
    """Files as given; directories → their supported images (sorted; with ``recursive`` those of
    every subfolder too). What a folder holds but is not read — subfolders (without
    ``recursive``), files of other types — is described in ``skipped``, one line per folder.

    Raises:
        DataError: a path that does not exist, a file of an unsupported type, or a directory with
            no supported image.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            entries = sorted(path.rglob("*") if recursive else path.iterdir())
            found = [p for p in entries if p.is_file() and is_supported(p)]
            folders = 0 if recursive else sum(p.is_dir() for p in entries)
            others = sum(p.is_file() and not is_supported(p) for p in entries)
            if skipped is not None and (folders or others):
                parts = [f"{folders} subfolder(s) (--recursive reads them)"] if folders else []
                parts += [f"{others} file(s) of other types"] if others else []
                skipped.append(f"{path}: not read: {', '.join(parts)}")
            if not found:
                raise DataError(
                    f"{path}: no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)}, "
                    ".nii, .nii.gz)"
                )
            out.extend(p for p in found if p.resolve() not in seen)
            seen.update(p.resolve() for p in found)
        elif path.is_file():
            if not is_supported(path):
                raise DataError(
                    f"{path}: unsupported file type (expected {', '.join(IMAGE_SUFFIXES)}, "
                    ".nii or .nii.gz)"
                )
            if path.resolve() not in seen:
                out.append(path)
                seen.add(path.resolve())
        else:
            raise DataError(f"{path}: file not found")
    if not out:
        raise DataError("no input images given")
    return out


def probe_shape(path: Path) -> tuple[int, ...]:
    """Image ``(H, W)`` or NIfTI volume shape from the file header, without decoding pixels.

    Raises:
        DataError: the header cannot be read.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        if is_nifti(path):
            import nibabel as nib

            return tuple(int(s) for s in nib.load(str(path)).shape)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                page = tif.pages[0]
                shape = tuple(int(s) for s in page.shape)
                axes = getattr(page, "axes", "")
            if "Y" in axes and "X" in axes:
                return shape[axes.index("Y")], shape[axes.index("X")]
            return shape[0], shape[1]
        from PIL import Image

        with pil_pixel_limit(None), Image.open(path) as im:  # header only: no bomb check here
            width, height = im.size
        return height, width
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable image header ({msg})") from None


def available_memory() -> int | None:
    """Bytes of memory available to this process (``MemAvailable``, cgroup limit), or None."""
    limits: list[int] = []
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:  # no /proc: no figure
        for line in fh:
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
                break
    for cg in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(cg).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            used = 0
            for cur in (
                "/sys/fs/cgroup/memory.current",
                "/sys/fs/cgroup/memory/memory.usage_in_bytes",
            ):
                try:
                    used = int(Path(cur).read_text().strip())
                    break
                except (OSError, ValueError):
                    continue
            limits.append(max(0, int(text) - used))
        break
    return min(limits) if limits else None


@contextmanager
def pil_pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Let Pillow open images up to ``max_pixels`` (``None``: any size; its own bomb guard is
    ~179 Mpixel). Used only after, or for, our own header check."""
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    if max_pixels is None or old is None:
        Image.MAX_IMAGE_PIXELS = None
    else:
        Image.MAX_IMAGE_PIXELS = max(int(max_pixels), old)
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old
