"""Data-parallel training: 2 CPU processes (gloo, loopback) under torchrun."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medspikeformer.data import build_dataset
from medspikeformer.engine.checkpoint import load_checkpoint, load_model
from medspikeformer.metrics import SegmentationMetrics


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_metrics_equal_single_process_evaluation(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "medspikeformer", "train",
        "--config", "synthetic", "--out", str(run), "--epochs", "1", "--batch-size", "2",
        "--size", "32", "--split", "50/25/25", "--device", "cpu", "--no-progress",
        "--set", "data.options.num_samples=14", "--set", "data.num_workers=0",
        "--set", "data.augment=none",
        "--set", "model.base_channels=4", "--set", "model.num_units=2",
        "--set", "model.timesteps=2", "--set", "model.head_dim=4",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "× 2 ranks" in proc.stdout  # really ran data-parallel
    assert proc.stdout.count("done: best val mIoU") == 1  # only rank 0 reports
    row = next(csv.DictReader((run / "metrics.csv").open()))
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["epoch"] == 1
    # Single-process evaluation of the saved checkpoint on the same val split.
    model, _ = load_model(run / "best.pt")
    val = build_dataset(
        "synthetic", split="val", size=32, split_spec="50/25/25", augment="none", num_samples=14
    )
    assert len(val) == 4 and int(float(row["val_num_images"])) == len(val)  # no padding, no loss
    metrics = SegmentationMetrics()
    with torch.no_grad():
        for i in range(len(val)):
            item = val[i]
            metrics.update(
                torch.sigmoid(model(item["image"][None])), item["mask"][None], [item["id"]]
            )
    ref = metrics.compute()
    for key in (
        "miou",
        "dsc",
        "acc",
        "spe",
        "sen",
        "mean_dice",
        "mean_iou",
        "tp",
        "fp",
        "fn",
        "tn",
    ):
        assert float(row[f"val_{key}"]) == pytest.approx(float(ref[key]), abs=1e-9), key
