"""The trainer says which images selected its checkpoint, and old runs resume as they were."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from medspikeformer.cli.train import overrides_from_args, register
from medspikeformer.engine import train

from .helpers import tiny_config


def _train(out: Path, **data) -> tuple[dict, list[str]]:
    lines: list[str] = []
    cfg = tiny_config(out, data={"split_spec": "paper", **data}, train={"epochs": 1})
    return train(cfg, log=lines.append), lines


def test_default_run_selects_on_a_carve_and_says_so(tmp_path: Path) -> None:
    _, lines = _train(tmp_path / "run")
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert set(split["ids"]["val"]).isdisjoint(split["ids"]["test"])
    assert split["validation"]["protocol"] == "carved"
    said = [ln for ln in lines if ln.startswith("model selection:")]
    assert len(said) == 1 and "carved from training" in said[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["selection"]["protocol"] == "carved" and "cases" not in summary["selection"]


def test_paper_protocol_run_says_so_and_an_old_run_resumes_on_its_split(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _, lines = _train(run, validation="test")
    said = [ln for ln in lines if ln.startswith("model selection:")]
    assert len(said) == 1 and "TEST part" in said[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selection"] == {"protocol": "test"}
    # as a run written before data.validation existed: no record, no option in config.yaml
    split = json.loads((run / "split.json").read_text())
    del split["validation"]
    (run / "split.json").write_text(json.dumps(split))
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["data"]["validation"]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    config["train"]["epochs"] = 2
    result = train(config, resume=run, log=lambda _: None)
    assert result["epochs_run"] == 2
    assert json.loads((run / "split.json").read_text())["ids"] == split["ids"]


def test_train_takes_fold_and_folds() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "--folds", "5", "--fold", "2"])
    assert overrides_from_args(args)["data"] == {"folds": 5, "fold": 2}
