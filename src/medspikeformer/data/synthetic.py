"""Synthetic co-occurrence segmentation set: the built-in default for the demo and the tests.

Each image holds one *salient* lesion-like object and 2–4 *non-salient distractors* of the same
colour and texture on a textured background, with fuzzy borders and pixel noise. The mask marks the
salient object only. What tells them apart (learnable by a small model in minutes):

* size: the salient object's radius is 14–22 % of the image side, distractors' 4–8 %;
* a dark boundary ring just inside the salient object's edge (a "rim", like a lesion's border);
  distractors have none.

Object shape: a star-shaped blob ``r(θ) = R (1 + Σ_{k=2..4} a_k cos(kθ + φ_k))``, ``a_k ~ U(0, 0.12)``;
opacity ``α = σ((1 − ρ) R / s)`` with ``ρ = |x − c| / r(θ)`` and border softness ``s`` (fuzzy
edge). The mask is ``ρ ≤ 1``. Everything is drawn from ``np.random.default_rng((seed, index))``,
so item ``i`` is the same whatever else is generated.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from .base import DEFAULT_SEED, DatasetSource, Sample, ScanResult


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a ``cells×cells`` grid upsampled bicubically."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _blob(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, radius: float
) -> np.ndarray:
    """Normalised radius ``ρ`` of every pixel w.r.t. a random star-shaped blob (``ρ ≤ 1`` inside)."""
    dy, dx = yy - cy, xx - cx
    theta = np.arctan2(dy, dx)
    r = np.ones_like(theta)
    for k in (2, 3, 4):
        r += rng.uniform(0.0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.sqrt(dy * dy + dx * dx) / (radius * r)


def make_synthetic_pair(
    index: int, seed: int = DEFAULT_SEED, size: tuple[int, int] = (256, 256)
) -> tuple[np.ndarray, np.ndarray]:
    """Generate item ``index``: image ``uint8 [H,W,3]`` and mask ``bool [H,W]``."""
    h, w = size
    rng = np.random.default_rng((int(seed), int(index)))
    side = float(min(h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    # background: pinkish tissue colour with low-frequency shading
    bg_col = np.array([0.80, 0.55, 0.55]) + rng.uniform(-0.08, 0.08, 3)
    shade = 0.08 * _smooth_noise(rng, h, w, 6)
    img = np.clip(bg_col[None, None, :] + shade[..., None], 0, 1).astype(np.float32)

    # one colour and texture for all objects (salient and distractors alike)
    obj_col = np.array([0.45, 0.25, 0.25]) + rng.uniform(-0.06, 0.06, 3)
    texture = 0.10 * _smooth_noise(rng, h, w, max(4, int(side) // 12))
    soft = max(0.6, side / 128.0)

    r_sal = rng.uniform(0.14, 0.22) * side
    cy = rng.uniform(r_sal * 1.2, h - r_sal * 1.2)
    cx = rng.uniform(r_sal * 1.2, w - r_sal * 1.2)
    rho = _blob(rng, yy, xx, cy, cx, r_sal)
    mask = rho <= 1.0

    placed: list[tuple[float, float, float]] = [(cy, cx, r_sal)]
    n_distractors = int(rng.integers(2, 5))
    for _ in range(n_distractors):
        for _attempt in range(40):
            r = rng.uniform(0.04, 0.08) * side
            y, x = rng.uniform(r, h - r), rng.uniform(r, w - r)
            if all(np.hypot(y - py, x - px) > 1.3 * (r + pr) + 2 for py, px, pr in placed):
                placed.append((y, x, r))
                break

    def paint(rho_o: np.ndarray, radius: float) -> None:
        alpha = 1.0 / (1.0 + np.exp(-np.clip((1.0 - rho_o) * radius / soft, -30, 30)))
        col = obj_col[None, None, :] * (1.0 + texture[..., None])
        img[:] = img * (1 - alpha[..., None]) + col * alpha[..., None]

    for y, x, r in placed[1:]:
        paint(_blob(rng, yy, xx, y, x, r), r)
    paint(rho, r_sal)
    # the salient cue: a dark ring on the salient object's border
    ring_w = max(1.0, 0.06 * r_sal)
    ring = np.exp(-(((rho - 1.0) * r_sal / ring_w + 0.5) ** 2))  # centred just inside the edge
    img *= 1.0 - 0.55 * ring[..., None]

    img += rng.normal(0.0, 0.03, img.shape).astype(np.float32)
    out = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return out, mask


class SyntheticSource(DatasetSource):
    """``num_samples`` generated pairs at the dataset's size; no root, no cache needed."""

    name: ClassVar[str] = "synthetic"
    needs_root: ClassVar[bool] = False
    cacheable: ClassVar[bool] = False
    options: ClassVar[dict[str, Any]] = {"num_samples": 200, "seed": None, "size": None}

    def __init__(self, root: Any = None, **options: Any) -> None:
        super().__init__(None, **options)
        n = int(self.opts["num_samples"])
        if n <= 0:
            from medspikeformer.errors import ConfigError

            raise ConfigError(f"synthetic: num_samples must be positive, got {n}")
        self.num_samples = n
        self.gen_seed = DEFAULT_SEED
        self.gen_size: tuple[int, int] = (256, 256)

    def scan(self) -> ScanResult:
        width = max(4, len(str(self.num_samples - 1)))
        samples = [
            Sample(
                id=f"synthetic_{i:0{width}d}",
                files=(),
                group=f"synthetic_{i:0{width}d}",
                extra=(i,),
            )
            for i in range(self.num_samples)
        ]
        return ScanResult(samples)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        return make_synthetic_pair(sample.extra[0], self.gen_seed, self.gen_size)

    def load_checked(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        return self.load(sample)
