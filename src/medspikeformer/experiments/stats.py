"""Statistics for experiment tables: mean ± std over seeds and a paired Wilcoxon test.

Decisions (documented in docs/results.md):

* **Spread over seeds.** ``mean ± std`` uses the sample standard deviation (``ddof=1``). With one
  seed the std is undefined and reported as ``None`` (the table then shows the mean alone).
* **Paired test.** MedSpikeFormer is compared with every other row by the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``, two-sided) on **per-image Dice over the same test images**. With
  several seeds, each image's Dice is first averaged over the seeds of its row, and the test runs
  on those per-image means (one pair per test image). Pooling the ``n_images × n_seeds`` pairs
  instead would count each image several times and treat correlated pairs as independent, which
  makes p-values too small; averaging keeps exactly one independent pair per image and removes
  part of the seed noise. The per-seed p-values are kept in the JSON as well, for inspection.
* **Degenerate cases**, handled before scipy is called (scipy's own behaviour here differs between
  versions: it raises or returns a warning-laden result):

  - no pairs → ``p = nan``, ``note = "no paired images"``;
  - all differences zero (e.g. a row compared with itself, or two models predicting the same
    masks) → ``statistic = 0``, ``p = 1.0``, ``note = "all differences zero"``;
  - otherwise zero differences are dropped (``zero_method="wilcox"``, Wilcoxon's original rule)
    and scipy chooses the exact null distribution for small samples, the normal approximation for
    large ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "PairedTest",
    "mean_std",
    "paired_wilcoxon",
    "seed_mean_per_image",
]


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired Wilcoxon signed-rank test of ``a`` against ``b`` (pairs = images).

    Attributes:
        n: number of paired images.
        n_nonzero: pairs whose difference is not zero (those the test ranks).
        statistic: scipy's statistic (the smaller rank sum for the two-sided test).
        p_value: two-sided p-value (``nan`` when there is nothing to test).
        median_diff: median of ``a - b`` (positive: ``a`` scores higher).
        mean_diff: mean of ``a - b``.
        note: ``""`` or the degenerate case met ("no paired images", "all differences zero").
    """

    n: int
    n_nonzero: int
    statistic: float
    p_value: float
    median_diff: float
    mean_diff: float
    note: str = ""

    def to_dict(self) -> dict[str, float | int | str | None]:
        """JSON-friendly dict (``nan`` → ``None``)."""
        out: dict[str, float | int | str | None] = {}
        for key, value in asdict(self).items():
            out[key] = None if isinstance(value, float) and math.isnan(value) else value
        return out


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``ddof=1``) of ``values``.

    Returns ``(mean, None)`` for a single value (the std of one sample is undefined) and
    ``(nan, None)`` for no values.
    """
    arr = np.asarray([float(v) for v in values], dtype=np.float64)
    if arr.size == 0:
        return math.nan, None
    if arr.size == 1:
        return float(arr[0]), None
    return float(arr.mean()), float(arr.std(ddof=1))


def seed_mean_per_image(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average per-image scores over seeds: ``[{id: dice}, ...] → {id: mean dice}``.

    Every seed must score the same images (same test split); otherwise ``ValueError`` names the
    ids that differ.
    """
    if not per_seed:
        return {}
    ids = set(per_seed[0])
    for k, scores in enumerate(per_seed[1:], start=1):
        if set(scores) != ids:
            diff = sorted(ids.symmetric_difference(scores))[:3]
            raise ValueError(f"seed {k} scores other test images than seed 0 (e.g. {diff})")
    return {i: float(np.mean([s[i] for s in per_seed])) for i in sorted(ids)}


def paired_wilcoxon(a: Mapping[str, float], b: Mapping[str, float]) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of per-image scores ``a`` vs ``b``.

    Args:
        a, b: ``{image id: score}``; pairs are formed on the ids both hold (the same test images).
            Mismatched id sets raise ``ValueError`` — a paired test over different images would be
            meaningless.

    Returns:
        ``PairedTest``; the degenerate cases are described in the module docstring.
    """
    if set(a) != set(b):
        diff = sorted(set(a).symmetric_difference(b))[:3]
        raise ValueError(f"paired test needs the same images on both sides (differ: {diff})")
    ids = sorted(a)
    x = np.asarray([a[i] for i in ids], dtype=np.float64)
    y = np.asarray([b[i] for i in ids], dtype=np.float64)
    d = x - y
    n = int(d.size)
    if n == 0:
        return PairedTest(0, 0, math.nan, math.nan, math.nan, math.nan, "no paired images")
    nonzero = int(np.count_nonzero(d))
    median_diff, mean_diff = float(np.median(d)), float(d.mean())
    if nonzero == 0:
        return PairedTest(n, 0, 0.0, 1.0, median_diff, mean_diff, "all differences zero")
    from scipy.stats import wilcoxon

    res = wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    return PairedTest(n, nonzero, float(res.statistic), float(res.pvalue), median_diff, mean_diff)
