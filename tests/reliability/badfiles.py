"""Fixture folders full of broken data, written by the tests (never copied from real datasets).

Each ``PROBLEMS`` entry adds one problem to a generic ``folder`` dataset (``images/`` +
``masks/``) and says which file the message must name and which words must describe the problem.
``ACCEPTED`` entries are unusual but supported inputs (RGBA, 16-bit, grey, palette, grey+alpha)
that must *not* be reported. MoNuSeg (Aperio XML) and COVID-19 NIfTI folders get their own sets.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

H, W = 32, 40


def rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def binary_mask(h: int = H, w: int = W, value: int = 255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 4 : 3 * h // 4, w // 4 : w // 2] = value
    return m


def save_png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(arr, mode=mode) if mode else Image.fromarray(arr)).save(path)
    return path


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_good_folder(root: Path, n: int = 3) -> Path:
    """``n`` valid pairs ``good<i>.png`` (RGB) + mask (0/255)."""
    for i in range(n):
        save_png(root / "images" / f"good{i}.png", rgb(i))
        save_png(root / "masks" / f"good{i}.png", binary_mask())
    return root


@dataclass(frozen=True)
class Problem:
    """One broken input: ``make(root)`` writes it; the report must name ``file`` with ``words``."""

    make: Callable[[Path], None]
    file: str
    words: tuple[str, ...]
    loader_fails: bool = True  # False: the loader accepts it (documented), only `data check` flags


def _truncated(root: Path) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images" / "truncated.png").write_bytes(png_bytes(rgb(10))[:400])
    save_png(root / "masks" / "truncated.png", binary_mask())


def _corrupt_jpeg(root: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb(11)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    data[20:200] = bytes(180)  # zero the quantisation/Huffman tables
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images" / "corrupt.jpg").write_bytes(bytes(data))
    save_png(root / "masks" / "corrupt.png", binary_mask())


def _zero_image(root: Path) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "images" / "zero.png").write_bytes(b"")
    save_png(root / "masks" / "zero.png", binary_mask())


def _zero_mask(root: Path) -> None:
    (root / "masks").mkdir(parents=True, exist_ok=True)
    save_png(root / "images" / "zeromask.png", rgb(12))
    (root / "masks" / "zeromask.png").write_bytes(b"")


def _size_mismatch(root: Path) -> None:
    save_png(root / "images" / "mismatch.png", rgb(13))
    save_png(root / "masks" / "mismatch.png", binary_mask(H - 8, W - 8))


def _missing_mask(root: Path) -> None:
    save_png(root / "images" / "nomask.png", rgb(14))


def _orphan_mask(root: Path) -> None:
    save_png(root / "masks" / "orphan.png", binary_mask())


def _five_channels(root: Path) -> None:
    import tifffile

    (root / "images").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(  # one page, 5 samples per pixel (not a stack of 32 pages)
        root / "images" / "five.tif",
        np.zeros((H, W, 5), np.uint8),
        photometric="minisblack",
        planarconfig="contig",
    )
    save_png(root / "masks" / "five.png", binary_mask())


def _two_channels(root: Path) -> None:
    import tifffile

    (root / "images").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        root / "images" / "two.tif",
        np.zeros((H, W, 2), np.uint8),
        photometric="minisblack",
        planarconfig="contig",
    )
    save_png(root / "masks" / "two.png", binary_mask())


def _float_pixels(root: Path) -> None:
    import tifffile

    (root / "images").mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(root / "images" / "float.tif", np.zeros((H, W), np.float32))
    save_png(root / "masks" / "float.png", binary_mask())


def _non_binary_mask(root: Path) -> None:
    save_png(root / "images" / "nonbinary.png", rgb(15))
    grad = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    save_png(root / "masks" / "nonbinary.png", grad)


PROBLEMS: dict[str, Problem] = {
    "truncated image": Problem(_truncated, "images/truncated.png", ("truncated",)),
    "corrupt image": Problem(_corrupt_jpeg, "images/corrupt.jpg", ("unreadable",)),
    "zero-byte image": Problem(_zero_image, "images/zero.png", ("empty", "0 bytes")),
    "zero-byte mask": Problem(_zero_mask, "masks/zeromask.png", ("empty", "0 bytes")),
    "image/mask size mismatch": Problem(_size_mismatch, "masks/mismatch.png", ("differs",)),
    "missing mask": Problem(_missing_mask, "images/nomask.png", ("no mask",)),
    "mask without image": Problem(_orphan_mask, "masks/orphan.png", ("without a matching",)),
    "five channels": Problem(_five_channels, "images/five.tif", ("unsupported", "5")),
    "two channels": Problem(_two_channels, "images/two.tif", ("unsupported", "2")),
    "float pixels": Problem(_float_pixels, "images/float.tif", ("unsupported", "float")),
    "non-binary mask": Problem(
        _non_binary_mask, "masks/nonbinary.png", ("not binary",), loader_fails=False
    ),
}


def _accepted(root: Path) -> dict[str, np.ndarray]:
    """Unusual but supported images; returns name → the uint8 RGB/grey read_image must give."""
    base = rgb(20)
    rgba = np.concatenate([base, np.full((H, W, 1), 77, np.uint8)], axis=2)
    grey = base[..., 0]
    g16 = grey.astype(np.uint16) * 257  # exact: v·257·255/65535 = v
    save_png(root / "images" / "rgba.png", rgba)
    save_png(root / "images" / "grey.png", grey)
    save_png(root / "images" / "sixteen.png", g16)
    save_png(root / "images" / "greyalpha.png", np.stack([grey, grey], axis=2), mode="LA")
    for name in ("rgba", "grey", "sixteen", "greyalpha"):
        save_png(root / "masks" / f"{name}.png", binary_mask())
    return {"rgba": base, "grey": grey, "sixteen": grey, "greyalpha": grey}


ACCEPTED = _accepted


# ----------------------------------------------------------------------------- MoNuSeg

XML_OK = (
    '<?xml version="1.0"?><Annotations><Annotation><Regions>'
    '<Region Id="1"><Vertices><Vertex X="4.5" Y="4.5"/><Vertex X="20.25" Y="5"/>'
    '<Vertex X="18" Y="20.75"/></Vertices></Region>'
    "</Regions></Annotation></Annotations>"
)

MONUSEG_PROBLEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name → (xml text or None for a missing xml, words)
    "truncated": (XML_OK[: len(XML_OK) // 2], ("malformed XML",)),
    "not xml": ("this is not XML at all", ("malformed XML",)),
    "vertex without Y": (XML_OK.replace(' Y="5"', ""), ("vertex",)),
    "vertex not numeric": (XML_OK.replace('X="18"', 'X="eighteen"'), ("vertex",)),
    "no regions": (
        '<?xml version="1.0"?><Annotations><Annotation/></Annotations>',
        ("no annotated regions",),
    ),
    "entity bomb": (
        '<?xml version="1.0"?><!DOCTYPE a ['
        + '<!ENTITY e0 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx">'
        + "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
        + "]><Annotations>&e9;</Annotations>",
        ("malformed XML",),
    ),
    "external entity": (
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<Annotations>&x;</Annotations>",
        ("XML",),
    ),
}


def make_monuseg(root: Path) -> Path:
    """``MoNuSegTestData/`` (tif + xml side by side) with one good case and every XML problem,
    plus a tif without xml and an xml without tif. Returns the dataset root."""
    import tifffile

    test = root / "MoNuSegTestData"
    test.mkdir(parents=True)
    cases = {"good": XML_OK, **{k.replace(" ", "_"): v[0] for k, v in MONUSEG_PROBLEMS.items()}}
    for i, (name, xml) in enumerate(cases.items()):
        tifffile.imwrite(test / f"{name}.tif", rgb(30 + i), photometric="rgb")
        (test / f"{name}.xml").write_text(xml)
    tifffile.imwrite(test / "noxml.tif", rgb(50), photometric="rgb")
    (test / "notif.xml").write_text(XML_OK)
    return root


# ----------------------------------------------------------------------------- COVID-19 NIfTI


def _save_nii(path: Path, data: np.ndarray) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))


def make_covid_nifti(root: Path) -> Path:
    """COVID-19-CT-Seg layout: a good case, a mask of another shape, a truncated volume, a
    volume without mask and a mask without volume. Returns the dataset root."""
    vols, masks = root / "COVID-19-CT-Seg_20cases", root / "Infection_Mask"
    hu = np.random.default_rng(3).uniform(-1000, 400, (H, W, 3)).astype(np.float32)
    inf = np.zeros((H, W, 3), np.uint8)
    inf[8:16, 8:20, 1] = 1
    _save_nii(vols / "case_good.nii.gz", hu)
    _save_nii(masks / "case_good.nii.gz", inf)
    _save_nii(vols / "case_shape.nii.gz", hu)
    _save_nii(masks / "case_shape.nii.gz", np.zeros((H, W, 4), np.uint8))
    _save_nii(vols / "case_trunc.nii.gz", hu)
    _save_nii(masks / "case_trunc.nii.gz", inf)
    blob = gzip.decompress((vols / "case_trunc.nii.gz").read_bytes())
    (vols / "case_trunc.nii.gz").write_bytes(gzip.compress(blob[:200]))  # header cut short
    _save_nii(vols / "case_nomask.nii.gz", hu)
    _save_nii(masks / "case_novolume.nii.gz", inf)
    return root


COVID_PROBLEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mask shape differs": ("Infection_Mask/case_shape.nii.gz", ("shape", "differs")),
    "truncated volume": ("COVID-19-CT-Seg_20cases/case_trunc.nii.gz", ("unreadable",)),
    "volume without mask": ("COVID-19-CT-Seg_20cases/case_nomask.nii.gz", ("no infection mask",)),
    "mask without volume": ("Infection_Mask/case_novolume.nii.gz", ("without a matching",)),
}
