"""Pictures: sizes, colours and the conversions they rest on."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image

from medspikeformer.errors import DataError
from medspikeformer.viz import (
    attention_figure,
    channel_magnitude,
    error_map,
    heatmap_overlay,
    normalize_map,
    overlay,
    plot_training_curves,
    qualitative_grid,
    to_mask,
    to_rgb_uint8,
)
from medspikeformer.viz.curves import read_metrics_csv, sort_columns
from medspikeformer.viz.grid import ERROR_COLORS


def test_to_rgb_uint8_conversions():
    chw = torch.rand(3, 5, 7)
    out = to_rgb_uint8(chw)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], np.rint(chw[0].numpy() * 255).astype(np.uint8))
    grey = to_rgb_uint8(np.full((4, 6), 7, dtype=np.uint8))
    assert grey.shape == (4, 6, 3) and (grey == 7).all()
    normed = to_rgb_uint8(np.array([[-2.0, 0.0, 2.0]]))  # out of [0,1]: min–max stretched
    np.testing.assert_array_equal(normed[0, :, 0], [0, 128, 255])
    assert to_rgb_uint8(torch.rand(1, 4, 4)).shape == (4, 4, 3)


def test_to_mask():
    assert to_mask(np.array([[0.2, 0.5, 0.9]])).tolist() == [[False, True, True]]
    assert to_mask(np.array([[0, 127, 128, 255]], dtype=np.uint8)).tolist() == [
        [False, False, True, True]
    ]
    assert to_mask(torch.ones(1, 2, 2)).shape == (2, 2)


def test_overlay_blends_foreground_only():
    img = np.full((10, 12, 3), 100, dtype=np.uint8)
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:8, 3:9] = True
    out = overlay(img, mask, color=(200, 0, 0), alpha=0.5, contour=False)
    assert out.shape == (10, 12, 3)
    np.testing.assert_array_equal(out[5, 5], [150, 50, 50])
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    with_edge = overlay(img, mask, color=(200, 0, 0), alpha=0.5)
    np.testing.assert_array_equal(with_edge[2, 5], [200, 0, 0])  # outline drawn on the border
    with pytest.raises(ValueError, match="differs"):
        overlay(img, mask[:5])


def test_error_map_colours():
    gt = np.array([[1, 1, 0, 0]], dtype=bool)
    pred = np.array([[0.9, 0.1, 0.8, 0.2]])
    out = error_map(gt, pred)
    assert out[0, 0].tolist() == list(ERROR_COLORS["true positive"])
    assert out[0, 1].tolist() == list(ERROR_COLORS["false negative"])
    assert out[0, 2].tolist() == list(ERROR_COLORS["false positive"])
    assert out[0, 3].tolist() == list(ERROR_COLORS["true negative"])


def _rows(n: int, h: int = 40, w: int = 56):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    images, gts, preds = [], [], []
    for i in range(n):
        gt = (yy - h // 2) ** 2 + (xx - w // 2 - i) ** 2 < 100
        images.append(torch.from_numpy(rng.random((3, h, w), dtype=np.float32)))
        gts.append(torch.from_numpy(gt[None].astype(np.float32)))
        preds.append(torch.from_numpy(np.roll(gt, 2, axis=1)[None].astype(np.float32) * 0.8))
    return images, gts, preds


@pytest.mark.parametrize("n", [1, 3])
def test_qualitative_grid_size(tmp_path, n):
    images, gts, preds = _rows(n)
    path = qualitative_grid(
        images, gts, preds, tmp_path / "sub" / "g.png", ids=[str(i) for i in range(n)]
    )
    assert Image.open(path).size == (4 * 200, n * 200 + 60)


def test_qualitative_grid_comparison_of_methods(tmp_path):
    images, gts, preds = _rows(2)
    path = qualitative_grid(images, gts, {"a": preds, "b": gts, "c": preds}, tmp_path / "g.png")
    assert Image.open(path).size == (5 * 200, 2 * 200 + 60)
    # the error colours appear in the picture
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    present = {tuple(p) for p in pixels[::7]}
    assert ERROR_COLORS["false positive"] in present and ERROR_COLORS["false negative"] in present


def test_qualitative_grid_checks_lengths(tmp_path):
    images, gts, preds = _rows(2)
    with pytest.raises(ValueError):
        qualitative_grid(images, gts[:1], preds, tmp_path / "g.png")
    with pytest.raises(ValueError):
        qualitative_grid([], [], [], tmp_path / "g.png")


def test_heatmap_helpers():
    feats = torch.zeros(4, 3, 5)
    feats[:, 1, 2] = -2.0
    mag = channel_magnitude(feats[None])
    assert mag.shape == (3, 5) and mag[1, 2] == 2.0 and mag[0, 0] == 0.0
    np.testing.assert_allclose(normalize_map(np.array([1.0, 3.0, 2.0])), [0.0, 1.0, 0.5])
    assert (normalize_map(np.ones((2, 2))) == 0).all()
    img = np.zeros((30, 50, 3), dtype=np.uint8)
    out = heatmap_overlay(img, mag, alpha=1.0)
    assert out.shape == (30, 50, 3)
    # jet: the maximum is dark red, the minimum dark blue
    assert out[int(30 * 1.5 / 3), int(50 * 2.5 / 5)][0] > 100
    assert out[0, 0][2] > 100 and out[0, 0][0] < 50


@pytest.mark.parametrize("teacher", [False, True])
def test_attention_figure_size(tmp_path, teacher):
    img = np.zeros((64, 48, 3), dtype=np.uint8)
    maps = [torch.rand(8 * 2**i, 64 // 2**i, 48 // 2**i) for i in range(3)]
    path = attention_figure(
        img, maps, tmp_path / "h.png", teacher_maps=maps if teacher else None, title="t"
    )
    rows = 2 if teacher else 1
    assert Image.open(path).size == (4 * 220, rows * 220 + 30)
    with pytest.raises(ValueError, match="stages"):
        attention_figure(img, maps, tmp_path / "x.png", teacher_maps=maps[:2])


def _write_csv(path, header, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


TRAINER_HEADER = [
    "epoch", "lr", "train_bce", "train_dice", "train_stage_sup", "train_align_kl",
    "train_align_l2", "train_teacher_seg", "train_total", "nan_skipped", "val_miou", "val_dsc",
    "val_acc", "val_spe", "val_sen", "val_mean_dice", "val_mean_iou", "val_tp", "val_fp",
    "val_fn", "val_tn", "val_num_images", "val_loss", "time_s",
]  # fmt: skip


def test_curve_columns_are_sorted_into_panels():
    panels = sort_columns(TRAINER_HEADER)
    assert panels["metrics"] == ["val_miou", "val_dsc", "val_mean_dice", "val_mean_iou"]
    assert panels["lr"] == ["lr"]
    assert panels["losses"] == [
        "train_bce", "train_dice", "train_stage_sup", "train_align_kl", "train_align_l2",
        "train_teacher_seg", "train_total", "val_loss",
    ]  # fmt: skip


def test_training_curves_png(tmp_path):
    rows = []
    for e in range(1, 6):
        row = [e, 1e-4 / e] + [1.0 / e] * 7 + [0] + [0.5 + 0.05 * e] * 7 + [10, 2, 3, 100, 2]
        row += [0.9 / e, 12.5]
        row[4] = "nan"  # train_stage_sup: not logged in this run → not drawn
        rows.append(row)
    path = tmp_path / "metrics.csv"
    _write_csv(path, TRAINER_HEADER, rows)
    data = read_metrics_csv(path)
    assert math.isnan(data["train_stage_sup"][0]) and data["val_miou"][0] == pytest.approx(0.55)
    out = plot_training_curves(path, tmp_path / "curves.png")
    assert Image.open(out).size == (1500, 420)
    _write_csv(path, ["epoch", "train_total", "val_miou"], [[1, 1.0, 0.2], [2, 0.5, 0.4]])
    assert Image.open(plot_training_curves(path, tmp_path / "c2.png")).size == (1000, 420)


def test_training_curves_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.csv"):
        plot_training_curves(tmp_path / "missing.csv", tmp_path / "c.png")
    _write_csv(tmp_path / "empty.csv", ["epoch", "val_miou"], [])
    with pytest.raises(DataError, match="no data rows"):
        plot_training_curves(tmp_path / "empty.csv", tmp_path / "c.png")
    _write_csv(tmp_path / "odd.csv", ["epoch", "name"], [[1, "x"]])
    with pytest.raises(DataError, match="no loss or metric columns"):
        plot_training_curves(tmp_path / "odd.csv", tmp_path / "c.png")


def test_per_class_columns_of_a_k_class_run() -> None:
    """Per-class mIoU/DSC join the metrics panel; per-class Acc/Spe/Sen stay out of every panel
    (they are not losses)."""
    panels = sort_columns(
        ["train_bce", "val_dsc", "val_dsc_benign", "val_sen_benign", "val_acc_bg"]
    )
    assert panels["metrics"] == ["val_dsc", "val_dsc_benign"]
    assert panels["losses"] == ["train_bce"]


def test_attention_figure_has_a_colour_bar():
    from medspikeformer.viz.heatmap import COLORBAR_LABEL, build_attention_figure

    maps = [torch.rand(4, 8, 8), torch.rand(8, 4, 4)]
    fig = build_attention_figure(np.zeros((32, 32, 3), dtype=np.uint8), maps)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert COLORBAR_LABEL in labels
    assert len(fig.axes) == 1 + len(maps) + 1  # image, stages, colour bar


def test_predict_overlay_uses_the_data_show_colour():
    """``predict --overlay`` and ``data show`` tint masks alike (it was red on red tissue)."""
    from medspikeformer.data.check import overlay as data_show_overlay

    img = np.full((20, 20, 3), (200, 60, 60), dtype=np.uint8)  # reddish tissue
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[5:15, 5:15] = 255
    ours = overlay(img, mask).astype(int)
    theirs = data_show_overlay(img, mask > 0).astype(int)
    assert np.abs(ours[8:12, 8:12] - theirs[8:12, 8:12]).max() <= 1
    assert ours[10, 10, 1] > ours[10, 10, 0]  # green dominates inside the mask


def test_many_curves_each_get_their_own_colour_and_a_legend_below(tmp_path):
    """A 3-class run logs more than ten metric curves: none repeats a colour, and the legend
    moves below the panel (the figure grows) instead of covering the lines."""
    from medspikeformer.viz.curves import line_colours

    for count in (3, 10, 14, 25):
        colours = line_colours(count)
        assert len(colours) == count and len(set(colours)) == count
    names = [f"val_dice_class{i}" for i in range(12)]
    rows = [[e, 1.0 / e, *[0.1 * e / (i + 1) for i in range(12)]] for e in (1, 2, 3)]
    path = tmp_path / "metrics.csv"
    _write_csv(path, ["epoch", "train_total", *names], rows)
    width, height = Image.open(plot_training_curves(path, tmp_path / "c.png")).size
    assert width == 1000 and height > 420
