"""`SegmentationMetrics.sync` over a real two-rank gloo process group."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from medspikeformer.metrics import SegmentationMetrics


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    probs = torch.rand(5, 1, 6, 6, generator=g)
    target = (torch.rand(5, 1, 6, 6, generator=g) > 0.5).float()
    return probs, target


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        probs, target = _data()
        idx = list(range(rank, 5, world))  # uneven shards: 3 images on rank 0, 2 on rank 1
        m = SegmentationMetrics()
        m.update(probs[idx], target[idx], ids=[f"img{i}" for i in idx])
        m.sync()
        torch.save({"result": m.compute(), "rows": m.per_image()}, Path(out_dir) / f"{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_sync_two_ranks(tmp_path: Path) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    probs, target = _data()
    ref = SegmentationMetrics()
    ref.update(probs, target, ids=[f"img{i}" for i in range(5)])
    expected_rows = {r["id"]: r for r in ref.per_image()}
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        assert got["result"] == ref.compute()
        assert {r["id"]: r for r in got["rows"]} == expected_rows
        # gathered in rank order
        assert [r["id"] for r in got["rows"]] == ["img0", "img2", "img4", "img1", "img3"]
