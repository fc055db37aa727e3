"""Training end to end on the real Kvasir-SEG sample (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medspikeformer.engine import train
from medspikeformer.engine.checkpoint import load_checkpoint

from .helpers import quiet, tiny_config


@pytest.mark.data
def test_tiny_train_and_resume_on_kvasir_sample(shared_data: Path, tmp_path: Path) -> None:
    images = sorted((shared_data / "kvasir-seg" / "Kvasir-SEG" / "images").glob("*.jpg"))
    assert len(images) >= 9
    ids = [p.stem for p in images[:9]]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:6], "val": ids[6:], "test": ids[6:]}))
    cfg = tiny_config(
        tmp_path / "run",
        data={
            "dataset": "kvasir",
            "root": str(shared_data / "kvasir-seg"),
            "size": 32,
            "split_spec": str(split),
            "augment": "paper",
            "cache_dir": str(tmp_path / "cache"),
            "options": {},
        },
        train={"epochs": 1, "batch_size": 3, "progress": False},
    )
    result = train(cfg, log=quiet)
    assert result["final_metrics"]["val_num_images"] == 3
    saved = json.loads((tmp_path / "run" / "split.json").read_text())
    assert saved["ids"]["train"] == ids[:6]
    cfg["train"]["epochs"] = 2
    assert train(cfg, resume=tmp_path / "run", log=quiet)["epochs_run"] == 2
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2
