"""``medspikeformer experiment cv``: the folds of one config, per fold and mean ± std."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medspikeformer.cli import main
from medspikeformer.errors import ConfigError
from medspikeformer.experiments.cv import CVSpec, run_cv
from medspikeformer.experiments.runner import ExperimentSpec, base_config

from .test_runner import tiny_sets


def test_cv_cli_trains_two_folds_and_reports_mean_std(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "cv"
    argv = ["experiment", "cv", "--dataset", "synthetic", "--folds", "2", "--out", str(out)]
    for s in tiny_sets(tmp_path / "cache"):
        argv += ["--set", s]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "cv.json").read_text())
    assert [f["fold"] for f in summary["per_fold"]] == [0, 1] and summary["split"] == "val"
    for key in ("dsc", "miou"):
        values = [f[key] for f in summary["per_fold"]]
        assert summary["mean_std"][key]["mean"] == pytest.approx(sum(values) / 2)
        assert summary["mean_std"][key]["std"] == pytest.approx(abs(values[0] - values[1]) / 2**0.5)
    md = (out / "cv.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert rows[1].startswith("| 0 |") and rows[2].startswith("| 1 |")
    assert rows[3].startswith("| mean ± std |") and "±" in rows[3]
    assert "mean ± std" in printed
    # the folds: disjoint held-out cases covering the pinned training cases, one test part
    pinned = json.loads((out / "split.json").read_text())["ids"]
    held, tests = [], []
    for k in range(2):
        split = json.loads((out / "folds" / f"fold{k}" / "split.json").read_text())
        assert split["validation"]["protocol"] == "fold" and split["validation"]["fold"] == k
        held.append(set(split["ids"]["val"]))
        tests.append(split["ids"]["test"])
        result = json.loads((out / "folds" / f"fold{k}" / "result.json").read_text())
        assert result["n_images"] == len(split["ids"]["val"])
    # (the synthetic config's 70/10/20 split names a val part: it joins the pool)
    assert held[0].isdisjoint(held[1]) and held[0] | held[1] == set(pinned["train"] + pinned["val"])
    assert set(pinned["test"]).isdisjoint(held[0] | held[1])
    assert tests[0] == tests[1] == pinned["test"]

    # a second run reuses the finished folds: nothing trains
    def no_training(*_a, **_k):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr("medspikeformer.engine.train", no_training)
    result = run_cv(CVSpec("synthetic", out, folds=2, sets=tiny_sets(tmp_path / "cache")), log=None)
    assert result.reused == [0, 1] and not result.trained


def test_cv_requests_out_of_range_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 2 folds"):
        run_cv(CVSpec("synthetic", tmp_path / "a", folds=1), log=None)
    with pytest.raises(ConfigError, match="cv scores val"):
        run_cv(CVSpec("synthetic", tmp_path / "b", folds=2, eval_split="all"), log=None)


def test_aggregate_over_fake_folds(tmp_path: Path) -> None:
    scores = [0.5, 0.7, 0.9]

    def fake(spec, k, run_dir, config):
        assert (config.data.folds, config.data.fold) == (3, k) and config.out == str(run_dir)
        return {"fold": k, "n_images": 1, "metrics": {"dsc": scores[k], "miou": scores[k] / 2,
                                                      "hd95": None}}  # fmt: skip

    result = run_cv(
        CVSpec("synthetic", tmp_path, folds=3, sets=tiny_sets(tmp_path / "c")),
        log=None,
        fold_runner=fake,
    )
    assert result.summary["mean_std"]["dsc"]["mean"] == pytest.approx(0.7)
    assert result.summary["mean_std"]["dsc"]["std"] == pytest.approx(0.2)
    assert "hd95" not in result.summary["mean_std"]  # no fold reported it
    assert "| mean ± std |  | 0.7000 ± 0.2000 | 0.3500 ± 0.1000 |" in result.markdown.read_text()


@pytest.mark.parametrize(("kind", "validation"), [("reproduce", "test"), ("ablation", "test"),
                                                  ("compare", "train")])  # fmt: skip
def test_the_paper_tables_keep_the_paper_protocol(tmp_path: Path, kind: str, validation: str):
    assert (
        base_config(ExperimentSpec(kind, "synthetic", out=tmp_path)).data.validation == validation
    )


def test_the_paper_recipe_pins_the_paper_protocol() -> None:
    from medspikeformer.engine.config import load_config

    assert load_config("kvasir", recipe="paper").data.validation == "test"
    for recipe in ("cpu", "cpu-paper", "cpu-quick", "demo"):
        assert load_config("kvasir", recipe=recipe).data.validation == "train"


@pytest.mark.parametrize(("kind", "says"), [("reproduce", True), ("compare", False)])
def test_an_experiment_report_under_the_paper_protocol_says_so(
    tmp_path: Path, kind: str, says: bool
) -> None:
    from medspikeformer.engine.config import config_to_dict
    from medspikeformer.experiments import run_experiment

    def fake(spec, row, k, run_dir, config):
        pinned = json.loads((Path(spec.out) / "split.json").read_text())
        assert "val" not in pinned["ids"]  # each run chooses its own validation part
        return {
            "row": row.key, "label": row.label, "seed": config.train.seed, "n_test": 1,
            "metrics": {"miou": 0.5, "dsc": 0.6, "acc": 0.9, "spe": 0.9, "sen": 0.5,
                        "dice_per_image": 0.6},
            "per_image_dice": {"im0": 0.6}, "run": {"train_time_s": 1.0},
            "profile": {"params_m": 1.0, "gflops": 2.0, "firing_rate": 0.1, "energy_mj": 0.5},
            "config": config_to_dict(config),
        }  # fmt: skip

    spec = ExperimentSpec(
        kind, "synthetic", out=tmp_path, rows=["medspikeformer"], sets=tiny_sets(tmp_path / "c")
    )
    spec.sets = [*spec.sets, "data.split_spec=paper"]
    result = run_experiment(spec, log=None, row_runner=fake)
    lines = [ln for ln in result.markdown.read_text().splitlines() if "paper's protocol" in ln]
    assert len(lines) == (1 if says else 0)


def test_cv_list_prints_the_folds_and_trains_nothing(tmp_path: Path, capsys) -> None:
    argv = ["experiment", "cv", "--dataset", "synthetic", "--folds", "3", "--out",
            str(tmp_path / "cv"), "--list"]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.split() == ["fold0", "fold1", "fold2"]
    assert not (tmp_path / "cv").exists()
