"""MoNuSeg 2018 (H&E nuclei), as published:

* training: ``MoNuSegTrainingData/Tissue Images/<id>.tif`` + ``MoNuSegTrainingData/Annotations/<id>.xml``
* test: ``MoNuSegTestData/<id>.tif`` + ``<id>.xml`` side by side.

``root`` may hold both folders (they form the official split), or be one of them. The masks are
rasterised from the Aperio XML polygons (``Annotations/Annotation/Regions/Region/Vertices/Vertex``
with float ``X``/``Y`` in pixel units), see ``rasterise_aperio_xml``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medspikeformer.errors import DataError

from ..base import DatasetSource, Sample, ScanResult
from ..io import read_image
from ..registry import register_dataset
from ._common import list_images, pair_by_name

TRAIN_DIR = "MoNuSegTrainingData"
TEST_DIR = "MoNuSegTestData"


def read_aperio_polygons(path: Path) -> list[np.ndarray]:
    """Every ``Region`` of an Aperio ImageScope XML as a float ``[n, 2]`` array of (x, y)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError: unknown encoding
        raise DataError(f"{path}: malformed XML ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror})") from None
    polys = []
    for region in root.iter("Region"):
        try:
            pts = [(float(v.attrib["X"]), float(v.attrib["Y"])) for v in region.iter("Vertex")]
        except (KeyError, ValueError):
            raise DataError(
                f"{path}: region {region.get('Id', '?')} has a vertex without numeric X/Y"
            ) from None
        arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: region {region.get('Id', '?')} has a non-finite vertex")
        if len(arr) >= 3:
            polys.append(arr)
    return polys


EDGE_EPS = 1e-4  # pixel centres are probed at (c + ε, r + ε): the half-open edge rule


def rasterise_polygons(polys: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Binary mask ``bool [H, W]``: union of filled polygons given in pixel units (x, y).

    Convention: pixel ``(r, c)`` has its centre at ``(x, y) = (c, r)`` and is foreground when the
    centre lies inside a polygon. Centres exactly on an edge (common: many MoNuSeg XMLs have
    integer vertices) follow the half-open rule of scan-line filling — they count when the polygon
    lies to their lower right — implemented by probing ``(c + ε, r + ε)``, ``ε = 1e-4``.
    The test is matplotlib's ``Path.contains_points``, on each polygon's bounding box; each polygon
    is tested on its own and the results are OR-ed, so overlapping nuclei give their union.
    Against the third-party reference masks this gives IoU ≈ 0.996 and 0.997; ``cv2.fillPoly``,
    which also paints every pixel the outline touches, gives 0.88 and 0.93.
    """
    from matplotlib.path import Path as MplPath

    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    for poly in polys:
        x0, y0 = np.floor(poly.min(axis=0)).astype(int)
        x1, y1 = np.ceil(poly.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if x1 < x0 or y1 < y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + EDGE_EPS, np.arange(y0, y1 + 1) + EDGE_EPS)
        inside = MplPath(poly).contains_points(np.column_stack([gx.ravel(), gy.ravel()]))
        mask[y0 : y1 + 1, x0 : x1 + 1] |= inside.reshape(gx.shape)
    return mask


def rasterise_aperio_xml(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Binary mask ``bool [H, W]`` of all regions of an Aperio XML (see ``rasterise_polygons``)."""
    polys = read_aperio_polygons(path)
    if not polys:
        raise DataError(f"{path}: no annotated regions found (expected Region/Vertices/Vertex)")
    return rasterise_polygons(polys, shape)


@register_dataset
class MoNuSegSource(DatasetSource):
    name: ClassVar[str] = "monuseg"
    has_official_split: ClassVar[bool] = True
    options: ClassVar[dict[str, Any]] = {}

    def _parts(self, root: Path) -> list[tuple[Path, Path, str]]:
        """(image folder, xml folder, part) for each published folder found."""
        parts = []
        for base, part in ((root / TRAIN_DIR, "train"), (root / TEST_DIR, "test"), (root, None)):
            if (base / "Tissue Images").is_dir():
                parts.append((base / "Tissue Images", base / "Annotations", part or "train"))
            elif part is not None and base.is_dir():
                parts.append((base, base, part))
            elif part is None and not parts and any(base.glob("*.xml")):
                parts.append((base, base, "test"))
        return parts

    def resolve_root(self, root: Path) -> Path:
        if not self._parts(root):
            raise DataError(
                f"{root}: not a MoNuSeg folder (expected {TRAIN_DIR}/Tissue Images + Annotations, "
                f"or {TEST_DIR}/ with .tif and .xml side by side)"
            )
        return root

    def scan(self) -> ScanResult:
        problems: list[str] = []
        samples: list[Sample] = []
        for img_dir, xml_dir, part in self._parts(self.root):
            if not xml_dir.is_dir():
                raise DataError(f"{xml_dir}: folder not found (MoNuSeg annotations)")
            images = list_images(img_dir, (".tif", ".tiff", ".png"))
            xmls = sorted(p for p in xml_dir.iterdir() if p.suffix.lower() == ".xml")
            samples += pair_by_name(
                images, xmls, lambda p: [p.stem + ".xml"], problems, xml_dir, part
            )
        return ScanResult(samples, problems)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        img = read_image(sample.image)
        return img, rasterise_aperio_xml(sample.masks[0], img.shape[:2])
