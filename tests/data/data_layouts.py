"""Writers of tiny datasets in each published layout (file names exactly as released)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def blob_pair(seed: int, h: int = 40, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A random RGB image and a binary mask (a filled rectangle), uint8 0/255."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    y, x = rng.integers(2, h // 2), rng.integers(2, w // 2)
    mask[y : y + h // 3, x : x + w // 3] = 255
    return img, mask


def save(path: Path, arr: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


def write_isic(root: Path, n: int = 5, parts: tuple[str, ...] = ("Training",)) -> Path:
    k = 0
    for part in parts:
        for _ in range(n):
            img, mask = blob_pair(k)
            sid = f"ISIC_{k:07d}"
            save(root / f"ISIC2018_Task1-2_{part}_Input" / f"{sid}.jpg", img, quality=95)
            save(root / f"ISIC2018_Task1_{part}_GroundTruth" / f"{sid}_segmentation.png", mask)
            k += 1
        (root / f"ISIC2018_Task1-2_{part}_Input" / "LICENSE.txt").write_text("CC-BY-NC\n")
        (root / f"ISIC2018_Task1_{part}_GroundTruth" / "ATTRIBUTION.txt").write_text("ISIC\n")
    return root


def write_kvasir(root: Path, n: int = 6) -> Path:
    base = root / "Kvasir-SEG"
    for i in range(n):
        img, mask = blob_pair(100 + i)
        sid = f"cju{i:04d}abc"
        save(base / "images" / f"{sid}.jpg", img, quality=90)
        save(base / "masks" / f"{sid}.jpg", mask, quality=75)  # JPEG masks, noisy edges
    return root


def write_busi(root: Path, per_class: int = 3, extra_masks: bool = True) -> Path:
    base = root / "Dataset_BUSI_with_GT"
    for c, cls in enumerate(("benign", "malignant", "normal")):
        for i in range(1, per_class + 1):
            img, mask = blob_pair(200 + 10 * c + i)
            grey = img[..., 0]
            rgb = np.repeat(grey[..., None], 3, axis=2)  # grey stored as RGB, as released
            save(base / cls / f"{cls} ({i}).png", rgb)
            if cls == "normal":
                mask[:] = 0
            save(base / cls / f"{cls} ({i})_mask.png", mask)
        if extra_masks and cls != "normal":
            second = np.zeros_like(mask)
            second[-6:, -6:] = 255
            save(base / cls / f"{cls} (1)_mask_1.png", second)
    return root


def _xml(polys: list[np.ndarray]) -> str:
    regions = []
    for k, p in enumerate(polys, 1):
        verts = "".join(f'<Vertex X="{x:.6f}" Y="{y:.6f}"/>' for x, y in p)
        regions.append(
            f'<Region Id="{k}" Type="0"><Attributes/><Vertices>{verts}</Vertices></Region>'
        )
    return (
        '<Annotations MicronsPerPixel="0.252"><Annotation Id="1" Type="4"><Attributes/>'
        f"<Regions><RegionAttributeHeaders/>{''.join(regions)}</Regions><Plots/></Annotation>"
        "</Annotations>"
    )


MONUSEG_POLYS = [
    np.array([[4.3, 4.2], [14.7, 4.2], [14.7, 12.6], [4.3, 12.6]]),  # rectangle, float coords
    np.array([[10.2, 8.1], [20.6, 8.1], [20.6, 18.4], [10.2, 18.4]]),  # overlaps the first
    np.array([[25.0, 25.0], [35.0, 25.0], [30.0, 35.0]]),  # triangle, integer coords
]


def write_monuseg(root: Path) -> Path:
    import tifffile

    rng = np.random.default_rng(5)
    for part, stem in (("train", "TCGA-AA-0001-01Z-00-DX1"), ("test", "TCGA-BB-0002-01Z-00-DX1")):
        img = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        if part == "train":
            tif = root / "MoNuSegTrainingData" / "Tissue Images" / f"{stem}.tif"
            xml = root / "MoNuSegTrainingData" / "Annotations" / f"{stem}.xml"
        else:
            tif = root / "MoNuSegTestData" / f"{stem}.tif"
            xml = root / "MoNuSegTestData" / f"{stem}.xml"
        tif.parent.mkdir(parents=True, exist_ok=True)
        xml.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(tif, img)
        xml.write_text(_xml(MONUSEG_POLYS))
    return root


def write_covid_slices(root: Path) -> Path:
    for part, n in (("train", 4), ("test", 3)):
        for i in range(n):
            img, mask = blob_pair(300 + i + (10 if part == "test" else 0))
            save(root / part / "Imgs" / f"{i + 1}.jpg", img[..., 0], quality=95)
            save(root / part / "GT" / f"{i + 1}.png", mask)
    return root


def write_covid_nifti(
    root: Path, cases: int = 3, shape: tuple[int, int, int] = (24, 20, 6)
) -> Path:
    import nibabel as nib

    vol_dir, mask_dir = root / "COVID-19-CT-Seg_20cases", root / "Infection_Mask"
    vol_dir.mkdir(parents=True)
    mask_dir.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for c in range(cases):
        hu = rng.uniform(-1200, 600, shape).astype(np.int16)
        m = np.zeros(shape, np.uint8)
        m[5:12, 4:9, 2:4] = 1  # infection on slices 2 and 3 only
        name = f"coronacases_{c + 1:03d}.nii.gz"
        nib.save(nib.Nifti1Image(hu, np.eye(4)), vol_dir / name)
        nib.save(nib.Nifti1Image(m, np.eye(4)), mask_dir / name)
    return root


def write_folder(root: Path, n: int = 4, suffix: str = "", ext: str = ".png") -> Path:
    for i in range(n):
        img, mask = blob_pair(400 + i)
        save(root / "images" / f"case{i}.png", img)
        save(root / "masks" / f"case{i}{suffix}{ext}", mask)
    return root
