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
from typing import Any

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


def _tiff_first_page(path: Path) -> np.ndarray | None:
    """The first page of a TIFF (tifffile); ``None`` when it needs the optional imagecodecs
    package (a compressed TIFF, e.g. LZW: the caller reads it with Pillow).

    The first page only: for a stack that is its first image, and a corrupt chain of later pages
    is never walked (enumerating the series of a mutated file can run for minutes). An H×W×5
    page stays 3-D and is refused by the caller.
    """
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            page = tif.pages[0]
            _check_tiff_pixels(path, int(page.imagelength), int(page.imagewidth))
            return np.asarray(page.asarray())
    except ValueError as exc:
        if "imagecodecs" not in str(exc):
            raise
        return None


def _decode(path: Path) -> np.ndarray:
    """The decoded pixels before any 16 → 8 bit scaling: ``[H,W]`` or ``[H,W,3]``, uint8,
    uint16 or bool."""
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            arr = _tiff_first_page(path)
            if arr is None:
                from PIL import Image

                with Image.open(path) as im:
                    im.load()
                    arr = np.asarray(im if im.mode in ("L", "RGB", "I;16") else im.convert("RGB"))
        else:
            from PIL import Image, ImageOps

            with Image.open(path) as im:
                im.load()
                im = _upright(im, ImageOps)
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


#: Bumped whenever :func:`read_mask` decides differently, so that cached masks are re-decoded.
MASK_RULE_VERSION = 2
#: A mask with more than two values is "near-binary" (a lossy or anti-aliased 0/M mask) when at
#: least this fraction of its pixels lies within an eighth of the range from 0 or from M.
NEAR_BINARY_SHARE = 0.99


def decode_mask_values(path: Path) -> np.ndarray:
    """The stored mask values, nothing converted: ``[H,W]`` (grey, palette indices, 16-bit),
    ``[H,W,2]`` (grey + alpha), ``[H,W,3]`` (colour) or ``[H,W,4]`` (colour + alpha)."""
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            arr = _tiff_first_page(path)
            if arr is None:
                arr = _pillow_mask(path)
        else:
            arr = _pillow_mask(path)
    except DataError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable mask ({msg})") from None
    if arr.ndim >= 2 and min(arr.shape[:2]) == 0:
        raise DataError(f"{path}: mask has no pixels (shape {tuple(arr.shape)})")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[0] in (2, 3, 4) and arr.shape[-1] > 4:  # planar TIFF
        arr = np.moveaxis(arr, 0, -1)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (2, 3, 4))):
        raise DataError(f"{path}: unsupported mask shape {tuple(arr.shape)} (expected H×W)")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        raise DataError(f"{path}: floating-point mask (value range unknown)")
    if arr.dtype.kind not in "ui" or arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
        raise DataError(f"{path}: mask of type {arr.dtype} outside 0…65535")
    return np.ascontiguousarray(arr)


def _pillow_mask(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        im = _upright(im, ImageOps)
        if im.mode == "P" and "transparency" in im.info:
            im = im.convert("PA")
        if im.mode in ("P", "L", "LA", "PA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "1"):
            arr = np.asarray(im)  # palette images: the indices, never their colours
        elif im.mode == "F":
            raise DataError(f"{path}: floating-point mask (value range unknown)")
        else:  # CMYK, YCbCr, LAB, ...
            arr = np.asarray(im.convert("RGB"))
    return arr


def _upright(im: Any, image_ops: Any) -> Any:
    """The picture as a viewer shows it: the EXIF orientation applied (a phone photo of a slide
    is stored sideways with an orientation tag). Images and masks both, so that they stay
    aligned."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block: the pixels as stored
        return im
    if orientation in (None, 1):
        return im
    return image_ops.exif_transpose(im)


def _values_text(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return "{" + shown + (", …" if len(values) > limit else "") + "}"


def _distinct_colours(arr: np.ndarray) -> np.ndarray:
    """The distinct colours of ``[H,W,C]`` (C ≤ 3, 8 or 16 bit), sorted, as ``[n, C]`` — packed
    into one integer per pixel first (``np.unique(axis=0)`` is far slower)."""
    bits = arr.dtype.itemsize * 8
    flat = arr.reshape(-1, arr.shape[-1]).astype(np.uint64)
    packed = np.zeros(len(flat), np.uint64)
    for c in range(flat.shape[1]):
        packed = (packed << np.uint64(bits)) | flat[:, c]
    unique = np.unique(packed)
    mask = np.uint64((1 << bits) - 1)
    channels = [
        (unique >> np.uint64(bits * (flat.shape[1] - 1 - c))) & mask for c in range(flat.shape[1])
    ]
    return np.stack(channels, axis=-1).astype(arr.dtype)


def binarise_mask(raw: np.ndarray, path: Path, threshold: int = 127) -> np.ndarray:
    """The one mask-decoding rule (docs/data.md, "Masks"): stored values → bool ``[H,W]``.

    * alpha: ignored when constant; when the colour is constant, the alpha channel *is* the mask
      (an annotation layer); otherwise transparent pixels are background;
    * colour: each distinct colour is one value, black is background;
    * two values (one of them 0): every non-zero pixel is foreground — 0/1, 0/255, 0/65535,
      label id 2, palette index 1, pure red or blue alike; luminance is never used;
    * more values: a lossy (JPEG) or anti-aliased 0/M mask — at least 99 % of the pixels within
      an eighth of the range from 0 or M, and M ≥ 128 — is thresholded (stored value scaled to
      8 bit > ``threshold``); anything else is refused, naming the values (a label map needs
      ``data.labels``).
    """
    arr = raw
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        colour, alpha = arr[..., :-1], arr[..., -1]
        if alpha.min() == alpha.max():
            arr = colour
        elif (colour == colour.reshape(-1, colour.shape[-1])[0]).all():
            arr = alpha
        else:
            arr = np.where(alpha[..., None] > 0, colour, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:  # colour
        if (arr == arr[..., :1]).all():  # grey stored as colour
            arr = arr[..., 0]
        else:
            colours = _distinct_colours(arr)
            if len(colours) == 2 and colours[0].any():
                raise DataError(
                    f"{path}: mask of two colours {tuple(int(c) for c in colours[0])} and "
                    f"{tuple(int(c) for c in colours[1])}, neither black: which is the "
                    "background?"
                )
            if len(colours) <= 2:
                return arr.any(axis=-1)
            arr = arr.max(axis=-1)  # a noisy coloured mask: its strongest channel
    values = np.unique(arr)
    if len(values) <= 2 and (values[0] == 0 or len(values) == 1):
        return arr > 0
    top = int(values[-1])
    scale = 255.0 if arr.dtype == np.uint8 else 65535.0
    if top * 255.0 / scale >= 128 and values[0] <= top / 8:
        near = (arr <= top / 8) | (arr >= top - top / 8)
        if float(near.mean()) >= NEAR_BINARY_SHARE:
            return np.round(arr.astype(np.float32) * (255.0 / scale)) > threshold
    raise DataError(
        f"{path}: mask is not binary: it holds {len(values)} values {_values_text(values)} "
        "(a binary mask has background 0 and one foreground value, or is a near-binary 0/255 "
        "with compression noise); a label map needs data.labels (docs/data.md)"
    )


def read_mask(path: str | Path, threshold: int = 127) -> np.ndarray:
    """Decode a mask file to a boolean ``[H,W]`` array by :func:`binarise_mask` (any non-zero
    value of a two-valued mask is foreground; palette indices and alpha honoured; lossy
    near-binary masks thresholded at ``threshold`` on the 8-bit scale; other multi-valued
    masks → ``DataError`` naming the values)."""
    path = Path(path)
    raw = decode_mask_values(path)
    return binarise_mask(raw, path, threshold)


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
            from PIL import Image, ImageOps

            with Image.open(path) as im:
                im.load()
                im = _upright(im, ImageOps)
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
