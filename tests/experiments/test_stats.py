"""Statistics of the experiment tables: mean ± std and the paired Wilcoxon test vs scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wilcoxon

from medspikeformer.experiments.stats import mean_std, paired_wilcoxon, seed_mean_per_image


def _ids(n: int) -> list[str]:
    return [f"img{i:03d}" for i in range(n)]


def test_mean_std_hand_cases() -> None:
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, math.sqrt(0.02)))
    mean, std = mean_std([0.8])
    assert mean == 0.8 and std is None
    mean, std = mean_std([])
    assert math.isnan(mean) and std is None
    # ddof=1, i.e. the sample std
    assert mean_std([1.0, 2.0, 3.0, 4.0])[1] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))


def test_wilcoxon_hand_case_matches_scipy_and_exact_value() -> None:
    # Differences 1..6, all positive: the exact two-sided p is 2 / 2^6 = 0.03125.
    a = dict(zip(_ids(6), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    b = dict.fromkeys(_ids(6), 0.0)
    t = paired_wilcoxon(a, b)
    assert t.p_value == pytest.approx(2 / 2**6)
    assert t.statistic == 0.0
    assert (t.n, t.n_nonzero, t.note) == (6, 6, "")
    assert t.median_diff == pytest.approx(3.5) and t.mean_diff == pytest.approx(3.5)


def test_wilcoxon_zero_differences_are_dropped_like_scipy() -> None:
    a = dict(zip(_ids(8), [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]))
    b = dict(zip(_ids(8), [0.9, 0.7, 0.75, 0.3, 0.5, 0.1, 0.35, 0.25]))
    t = paired_wilcoxon(a, b)
    ref = wilcoxon(list(a.values()), list(b.values()), zero_method="wilcox")
    assert t.n == 8 and t.n_nonzero == 6
    assert t.p_value == pytest.approx(ref.pvalue)
    assert t.statistic == pytest.approx(ref.statistic)


def test_wilcoxon_pairs_by_id_not_by_order() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.random(20), rng.random(20)
    ids = _ids(20)
    a = dict(zip(ids, x))
    b = dict(zip(reversed(ids), y[::-1]))  # same pairs, other insertion order
    assert paired_wilcoxon(a, b).p_value == pytest.approx(wilcoxon(x, y).pvalue)


def test_wilcoxon_degenerate_all_zero_differences() -> None:
    a = dict(zip(_ids(5), [0.1, 0.5, 0.5, 0.9, 1.0]))
    t = paired_wilcoxon(a, dict(a))
    assert t.p_value == 1.0 and t.statistic == 0.0
    assert t.n == 5 and t.n_nonzero == 0 and t.note == "all differences zero"
    assert t.to_dict()["p_value"] == 1.0


def test_wilcoxon_degenerate_no_pairs_and_mismatched_images() -> None:
    t = paired_wilcoxon({}, {})
    assert t.n == 0 and math.isnan(t.p_value) and t.note == "no paired images"
    assert t.to_dict()["p_value"] is None
    with pytest.raises(ValueError, match="same images"):
        paired_wilcoxon({"a": 1.0, "b": 0.5}, {"a": 1.0, "c": 0.5})


def test_seed_mean_per_image() -> None:
    per_seed = [{"a": 0.2, "b": 0.6}, {"a": 0.4, "b": 1.0}]
    assert seed_mean_per_image(per_seed) == pytest.approx({"a": 0.3, "b": 0.8})
    assert seed_mean_per_image([]) == {}
    with pytest.raises(ValueError, match="other test images"):
        seed_mean_per_image([{"a": 0.1}, {"b": 0.1}])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1, allow_nan=False), st.floats(0, 1, allow_nan=False)),
        min_size=1,
        max_size=30,
    )
)
def test_wilcoxon_agrees_with_scipy_whenever_scipy_is_defined(
    pairs: list[tuple[float, float]],
) -> None:
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    ids = _ids(len(pairs))
    t = paired_wilcoxon(dict(zip(ids, x)), dict(zip(ids, y)))
    assert t.n == len(pairs)
    if np.all(x - y == 0):
        assert t.p_value == 1.0 and t.note == "all differences zero"
        return
    ref = wilcoxon(x, y, zero_method="wilcox")
    assert 0.0 <= t.p_value <= 1.0
    assert t.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    # Swapping the sides changes nothing in a two-sided test.
    assert paired_wilcoxon(dict(zip(ids, y)), dict(zip(ids, x))).p_value == pytest.approx(t.p_value)
