"""Tables (markdown/CSV) and plots from hand-made per-seed results; rows definitions."""

from __future__ import annotations

import csv
import io

import pytest
from PIL import Image
from scipy.stats import wilcoxon

from medspikeformer.errors import ConfigError
from medspikeformer.experiments.plots import plot_accuracy_vs_energy, plot_metric_bars
from medspikeformer.experiments.rows import ABLATION_ROWS, ablation_rows, compare_rows
from medspikeformer.experiments.tables import COLUMNS, summarise, to_csv, to_markdown
from medspikeformer.models import PAPER_NETWORK

IDS = [f"im{i}" for i in range(6)]


def _result(
    row: str, seed: int, dice: list[float], *, spiking: bool = True, miou: float = 0.5
) -> dict:
    return {
        "row": row,
        "seed": seed,
        "metrics": {
            "miou": miou,
            "dsc": 2 * miou / (1 + miou),
            "acc": 0.9,
            "spe": 0.95,
            "sen": 0.7,
            "dice_per_image": sum(dice) / len(dice),
        },
        "per_image_dice": dict(zip(IDS, dice)),
        "profile": {
            "params_m": 2.9,
            "gflops": 10.0,
            "firing_rate": 0.12 if spiking else None,
            "energy_mj": 5.0 if spiking else 40.0,
        },
        "run": {"train_time_s": 120.0},
    }


@pytest.fixture
def results() -> dict[str, list[dict]]:
    ref0 = [0.9, 0.8, 0.85, 0.7, 0.95, 0.6]
    ref1 = [0.8, 0.8, 0.75, 0.7, 0.85, 0.6]
    return {
        "medspikeformer": [
            _result("medspikeformer", 41, ref0, miou=0.6),
            _result("medspikeformer", 42, ref1, miou=0.7),
        ],
        "qk": [
            _result("qk", 41, [0.5, 0.4, 0.6, 0.3, 0.2, 0.1], miou=0.3),
            _result("qk", 42, [0.5, 0.4, 0.6, 0.3, 0.2, 0.1], miou=0.3),
        ],
        "unet": [
            _result("unet", 41, ref0, spiking=False),
            _result("unet", 42, ref1, spiking=False),
        ],
    }


def test_summary_means_stds_and_paired_test(results) -> None:
    rows = compare_rows(["medspikeformer", "qk", "unet"])
    sums = summarise(rows, results, reference="medspikeformer", dataset="kvasir")
    assert [s.key for s in sums] == ["medspikeformer", "qk", "unet"]
    ref, qk, unet = sums
    assert ref.is_reference and ref.test is None
    assert ref.values["miou"] == pytest.approx((0.65, 0.0707106781))
    assert qk.values["miou"] == pytest.approx((0.3, 0.0))
    assert ref.values["train_min"] == pytest.approx((2.0, 0.0))
    # The paired test runs on per-image Dice averaged over seeds (one pair per image).
    ref_mean = [
        (a + b) / 2
        for a, b in zip(
            results["medspikeformer"][0]["per_image_dice"].values(),
            results["medspikeformer"][1]["per_image_dice"].values(),
        )
    ]
    qk_mean = [0.5, 0.4, 0.6, 0.3, 0.2, 0.1]
    assert qk.test.p_value == pytest.approx(wilcoxon(ref_mean, qk_mean).pvalue)
    assert qk.test.n == 6 and qk.test.median_diff > 0
    assert set(qk.per_seed_p) == {41, 42}
    # Same per-image Dice as the reference: the degenerate case, explicit.
    assert unet.test.note == "all differences zero" and unet.test.p_value == 1.0
    assert "firing_rate" not in unet.values  # ANN: no firing rate
    # Paper figures for Kvasir (Table 1 reports DSC there).
    assert (
        ref.paper == ("dsc", 0.9081)
        and unet.paper == ("dsc", 0.8891)
        and qk.paper == ("dsc", 0.8614)
    )


def test_markdown_format(results) -> None:
    sums = summarise(
        compare_rows(["medspikeformer", "qk", "unet"]),
        results,
        reference="medspikeformer",
        dataset="kvasir",
    )
    md = to_markdown(sums)
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 3
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:3] == ["Row", "Seeds", "mIoU"]
    assert header[-2:] == ["p vs MedSpikeFormer", "Paper"]
    assert len(header) == 2 + len(COLUMNS) + 2
    for line in lines[2:]:
        assert len(line.strip("|").split("|")) == len(header)
    assert "| MedSpikeFormer | 2 | 0.6500 ± 0.0707 |" in md
    assert "(reference)" in lines[2] and "DSC 0.9081" in lines[2]
    assert "1 (identical, n=6)" in lines[4]
    assert "—" in lines[4]  # unet has no firing rate


def test_single_seed_shows_mean_only_and_csv_roundtrip(results) -> None:
    one = {k: v[:1] for k, v in results.items()}
    sums = summarise(
        compare_rows(["medspikeformer", "qk"]), one, reference="medspikeformer", dataset="busi"
    )
    md = to_markdown(sums)
    assert "±" not in md
    assert "DSC 0.9093" in md  # BUSI figure of Table 1
    rows = list(csv.DictReader(io.StringIO(to_csv(sums))))
    assert [r["row"] for r in rows] == ["medspikeformer", "qk"]
    assert float(rows[0]["miou_mean"]) == pytest.approx(0.6)
    assert rows[0]["miou_std"] == "" and rows[0]["wilcoxon_p"] == ""
    assert float(rows[1]["wilcoxon_p"]) == pytest.approx(
        wilcoxon(
            list(one["medspikeformer"][0]["per_image_dice"].values()),
            [0.5, 0.4, 0.6, 0.3, 0.2, 0.1],
        ).pvalue
    )
    assert rows[1]["wilcoxon_n"] == "6" and rows[0]["paper_value"] == "0.9093"


def test_rows_selection_and_errors() -> None:
    assert [r.key for r in compare_rows()] == [
        "medspikeformer",
        "medspikeformer_ilif",
        "ssa",
        "sdt",
        "qk",
        "ann",
        "unet",
    ]
    assert [r.key for r in compare_rows(["unet"])] == ["medspikeformer", "unet"]
    keys = [r.key for r in ABLATION_ROWS]
    assert keys == [
        "full",
        "wo_sdsa",
        "wo_sa",
        "wo_sc",
        "wo_aa",
        "wo_ai",
        "wo_ia",
        "wo_ii",
        "wo_kl",
        "wo_l2",
        "t1",
        "t2",
        "t4",
        "t8",
        "ilif",
    ]
    assert [r.key for r in ablation_rows(["t1"])] == ["full", "t1"]
    with pytest.raises(ConfigError, match=r"unknown ablation row.*known: full"):
        ablation_rows(["wo_everything"])
    with pytest.raises(ConfigError, match="given twice"):
        compare_rows(["qk", "qk"])
    by = {r.key: r for r in ABLATION_ROWS}
    assert by["t8"].model_overrides == {"timesteps": 8, **PAPER_NETWORK}
    assert by["ilif"].model_overrides["neuron"] == "ilif"
    compare = {r.key: r for r in compare_rows()}
    assert compare["medspikeformer_ilif"].model_overrides == by["ilif"].model_overrides
    # Table 1's row is the paper's network whatever a recipe or a later default says
    assert compare["medspikeformer"].model_overrides == {"neuron": "lif", "head": "spike"}
    assert by["wo_sa"].train_overrides == {"teacher.mode": "none", "train.init_from": None}
    assert by["wo_kl"].train_overrides == {"teacher.align.use_kl": False, "train.init_from": None}
    assert by["wo_l2"].train_overrides == {"teacher.align.use_l2": False, "train.init_from": None}
    assert by["wo_aa"].paper["kvasir"] == {"miou": 0.8054}


def test_plots_are_written(tmp_path, results) -> None:
    sums = summarise(
        compare_rows(["medspikeformer", "qk", "unet"]),
        results,
        reference="medspikeformer",
        dataset="kvasir",
    )
    bars = plot_metric_bars(sums, tmp_path / "bars.png", title="t")
    scatter = plot_accuracy_vs_energy(sums, tmp_path / "sub" / "scatter.png")
    for path in (bars, scatter):
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200


@pytest.mark.parametrize(
    ("limits", "expected"),
    [((0.601, 0.602), (0.5515, 0.6515)), ((0.0, 0.01), (0.0, 0.1)), ((0.99, 1.0), (0.9, 1.0)),
     ((0.2, 0.8), (0.2, 0.8))],
)  # fmt: skip
def test_a_metric_axis_never_zooms_below_a_tenth(limits, expected) -> None:
    """Rows 0.001 apart must not fill the whole axis (the accuracy-vs-energy scatter did)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medspikeformer.experiments.plots import MIN_METRIC_SPAN, _at_least

    fig, ax = plt.subplots()
    ax.set_ylim(*limits)
    _at_least(ax, MIN_METRIC_SPAN)
    assert ax.get_ylim() == pytest.approx(expected)
    plt.close(fig)
