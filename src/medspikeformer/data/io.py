"""Reading images and masks from disk, and the one normalisation shared by training and inference.

Normalisation (``to_model_input``), used by every dataset and by ``predict``:

* uint8 pixel values ``v`` become ``x = v / 255`` in ``[0, 1]`` (float32); no mean/std shift —
  the network's first convolution is followed by batch normalisation, which absorbs it;
* channels: grey → replicated to ``in_channels``; RGB → kept when ``in_channels == 3``, or
  converted to luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, OpenCV's weights)
  when ``in_channels == 1``.

Decoding: JPEG/PNG/BMP through Pillow (which reports truncated files instead of returning a
half-grey image), TIFF through tifffile (Pillow when tifffile lacks the optional ``imagecodecs``
for a compression such as MoNuSeg's LZW). 16-bit images are scaled to 8 bit by ``v * 255 / 65535``
(rounded); RGBA drops alpha; palette and other modes are converted to RGB; float images are
refused (their value range is unknown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medspikeformer.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")


def _to_uint8(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return np.round(arr.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    raise DataError(
        f"{path}: unsupported pixel type {arr.dtype} (expected 8-bit or 16-bit integers)"
    )


def _normalise_layout(arr: np.ndarray, path: Path) -> np.ndarray:
    """[H,W] | [H,W,1] | [H,W,3] | [H,W,4] → [H,W] or [H,W,3]."""
    if arr.ndim >= 2 and min(arr.shape[:2]) == 0:
        raise DataError(f"{path}: image has no pixels (shape {tuple(arr.shape)})")
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[-1] == 1:
        return arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return arr
    if arr.ndim == 3 and arr.shape[-1] == 4:
        return arr[..., :3]
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] > 4:  # planar TIFF
        return np.ascontiguousarray(np.moveaxis(arr[:3], 0, -1))
    raise DataError(f"{path}: unsupported image shape {tuple(arr.shape)} (expected H×W or H×W×3)")


def _check_tiff_pixels(path: Path, height: int, width: int) -> None:
    """Refuse a TIFF page larger than Pillow's decompression-bomb limit (2 × MAX_IMAGE_PIXELS,
    ≈ 179 Mpixel; ``None`` = no limit) before decoding: a few corrupt header bytes can claim a
    huge image that tifffile would allocate and zero-fill. ``predict`` raises the limit to its
    ``--max-pixels`` after checking the size against the available memory."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    pixels = height * width
    if limit is not None and pixels > 2 * limit:
        raise DataError(
            f"{path}: TIFF page of {width}×{height} = {pixels / 1e6:.0f} Mpixel exceeds the "
            f"decoding limit of {2 * limit / 1e6:.0f} Mpixel (corrupt header or a huge image)"
        )


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to ``uint8`` ``[H,W,3]`` RGB or ``[H,W]`` grey.

    Raises ``DataError`` naming the file for missing, empty, truncated or unsupported files.
    """
    path = Path(path)
    return np.ascontiguousarray(_to_uint8(_decode(path), path))


def _decode(path: Path) -> np.ndarray:
    """The decoded pixels before any 16 → 8 bit scaling: ``[H,W]`` or ``[H,W,3]``, uint8,
    uint16 or bool."""
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            try:
                # The first page only: for a stack that is its first image, and a corrupt chain
                # of later pages is never walked (enumerating the series of a mutated file can
                # run for minutes). An H×W×5 page stays 3-D and is refused below.
                with tifffile.TiffFile(str(path)) as tif:
                    page = tif.pages[0]
                    _check_tiff_pixels(path, int(page.imagelength), int(page.imagewidth))
                    arr = page.asarray()
            except ValueError as exc:
                # compressed TIFF (e.g. LZW) needs the optional imagecodecs package: Pillow reads it
                if "imagecodecs" not in str(exc):
                    raise
                from PIL import Image

                with Image.open(path) as im:
                    im.load()
                    arr = np.asarray(im if im.mode in ("L", "RGB", "I;16") else im.convert("RGB"))
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(im)
                    if arr.dtype != np.uint16:
                        if arr.min() < 0 or arr.max() > 65535:
                            raise DataError(f"{path}: 32-bit integer image out of 16-bit range")
                        arr = arr.astype(np.uint16)
                elif im.mode in ("L", "RGB"):
                    arr = np.asarray(im)
                elif im.mode == "1" or im.mode == "LA":
                    arr = np.asarray(im.convert("L"))
                elif im.mode == "F":
                    raise DataError(f"{path}: floating-point image (value range unknown)")
                else:  # RGBA, P, CMYK, YCbCr, ...
                    arr = np.asarray(im.convert("RGB"))
    except DataError:
        raise
    except Exception as exc:  # decoder errors: truncated, corrupt, unknown format
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable image ({msg})") from None
    return _normalise_layout(np.asarray(arr), path)


def to_grey(img: np.ndarray) -> np.ndarray:
    """``[H,W,3]`` uint8 RGB → ``[H,W]`` uint8 luminance (BT.601); grey input passes through."""
    if img.ndim == 2:
        return img
    w = np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    return np.clip(np.round(img[..., :3].astype(np.float32) @ w), 0, 255).astype(np.uint8)


def read_mask(path: str | Path, threshold: int = 127) -> np.ndarray:
    """Decode a mask file to a boolean ``[H,W]`` array: foreground where grey value > threshold.

    Masks stored as 0/1 (rather than 0/255) are recognised and kept as they are — at 8 and at 16
    bit: the 0/1 check looks at the stored values, before 16-bit masks are scaled to 8 bit (which
    would turn a 16-bit 1 into 0 and the mask into an empty one).
    """
    path = Path(path)
    raw = _decode(path)
    if raw.max() <= 1:
        return (raw if raw.ndim == 2 else raw.max(axis=-1)) > 0
    return to_grey(_to_uint8(raw, path)) > threshold


def read_label_map(path: str | Path) -> np.ndarray:
    """Decode a label map (PNG/TIFF, one integer class id per pixel) to ``[H,W]`` ``uint8`` or
    ``uint16`` ids, values as stored (no scaling, no threshold).

    A colour file whose three channels are equal is read as grey; a real colour image, a float
    or a 32-bit image → ``DataError`` naming the file (a label map holds integer ids).
    """
    path = Path(path)
    _check_file(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                page = tif.pages[0]
                _check_tiff_pixels(path, int(page.imagelength), int(page.imagewidth))
                arr = np.asarray(page.asarray())
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                if im.mode == "P" or im.mode in (
                    "I;16",
                    "I;16B",
                    "I;16L",
                    "I",
                    "L",
                    "RGB",
                    "1",
                ):  # palette PNG: the indices are the ids
                    arr = np.asarray(im)
                else:
                    raise DataError(f"{path}: label map in unsupported mode {im.mode}")
    except DataError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable label map ({msg})") from None
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        if not (
            np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
        ):
            raise DataError(
                f"{path}: a colour image is not a label map (expected one id per pixel)"
            )
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{path}: label map of shape {tuple(arr.shape)} (expected H×W)")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: label map of type {arr.dtype} (expected integer ids)")
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
        raise DataError(f"{path}: label ids out of 0..65535")
    return np.ascontiguousarray(arr.astype(np.uint16 if arr.max(initial=0) > 255 else np.uint8))


def to_model_input(img: np.ndarray, in_channels: int = 3) -> torch.Tensor:
    """uint8 ``[H,W]`` or ``[H,W,3]`` image → float32 tensor ``[C,H,W]`` in ``[0,1]``.

    ``x = v / 255``; grey is replicated to ``in_channels``; RGB is converted to BT.601 luminance
    when ``in_channels == 1``. No resizing. This is the exact transform the datasets apply.
    """
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    # numpy, single-threaded: torch's intra-op pool costs more than it saves at this size and
    # competes with the training step for cores (DataLoader workers, shared machines)
    if img.ndim == 2:
        x = np.divide(img, np.float32(255.0), dtype=np.float32)
        return torch.from_numpy(np.repeat(x[None], in_channels, axis=0))
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected [H,W] or [H,W,3], got {img.shape}")
    if in_channels == 1:
        return to_model_input(to_grey(img), 1)
    x = np.divide(img.transpose(2, 0, 1), np.float32(255.0), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x))
