"""End-to-end smoke tests of ``medspikeformer experiment compare|ablation`` on tiny synthetic data.

Tiny everything (12 synthetic images at 32 px, base width 4, 2 units, T = 2, 1 epoch) so that both
commands run inside ``make test``; the tests check the written tables, resumability (a finished row
is never retrained; an interrupted one resumes through the engine) and the plots.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from medspikeformer.cli import main
from medspikeformer.errors import ConfigError
from medspikeformer.experiments import ExperimentSpec, run_experiment
from medspikeformer.experiments.rows import ablation_rows, compare_rows
from medspikeformer.experiments.runner import base_config, pin_split, resolve_row_config


def tiny_sets(cache: Path) -> list[str]:
    return [
        "train.epochs=1",
        "train.batch_size=4",
        "train.progress=false",
        "data.size=32",
        "data.augment=none",
        "data.num_workers=0",
        "data.options.num_samples=12",
        f"data.cache_dir={cache}",
        "model.base_channels=4",
        "model.num_units=2",
        "model.timesteps=2",
    ]


def _cli_args(kind: str, out: Path, cache: Path, rows: list[str]) -> list[str]:
    args = ["experiment", kind, "--dataset", "synthetic", "--out", str(out), "--models", *rows]
    for s in tiny_sets(cache):
        args += ["--set", s]
    return args


def _table_lines(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]


def test_compare_cli_end_to_end_and_resume(tmp_path: Path, monkeypatch, capsys) -> None:
    out, cache = tmp_path / "cmp", tmp_path / "cache"
    assert main(_cli_args("compare", out, cache, ["qk"])) == 0
    # --- tables
    md = (out / "results.md").read_text()
    table = _table_lines(md)
    header, body = table[0], table[1:]
    assert header[:3] == ["Row", "Seeds", "mIoU"] and header[-2] == "p vs MedSpikeFormer"
    assert [r[0] for r in body] == ["MedSpikeFormer", "QKFormer token attn."]
    assert body[0][-2] == "(reference)"
    assert "n=" in body[1][-2] or "identical" in body[1][-2]
    for r in body:
        assert len(r) == len(header)
        for cell in r[2:7]:  # mIoU, DSC, Acc, Spe, Sen
            assert 0.0 <= float(cell) <= 1.0
    assert "1 epochs" in md and "size 32" in md
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["row"] for r in rows] == ["medspikeformer", "qk"]
    assert float(rows[0]["params_m_mean"]) > 0 and float(rows[0]["energy_mj_mean"]) > 0
    assert 0.0 <= float(rows[0]["firing_rate_mean"]) <= 1.0
    # --- per-row results: same test images for both rows, metrics as the evaluation computed
    res = {
        k: json.loads((out / "rows" / k / "seed0" / "result.json").read_text())
        for k in ("medspikeformer", "qk")
    }
    assert set(res["medspikeformer"]["per_image_dice"]) == set(res["qk"]["per_image_dice"])
    assert res["medspikeformer"]["n_test"] == 3
    assert res["medspikeformer"]["profile"]["firing_rate_input"] == "3 test images"
    assert res["medspikeformer"]["run"]["teacher"] == "joint"
    assert res["qk"]["run"]["teacher"] == "none"  # baselines train without the ANN teacher
    assert float(rows[1]["miou_mean"]) == pytest.approx(res["qk"]["metrics"]["miou"], rel=1e-5)
    # --- plots
    for name in ("metric_bars.png", "accuracy_vs_energy.png", "dsc_over_time.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300
    capsys.readouterr()

    # --- second invocation: nothing is trained again
    calls: list[dict] = []

    def fake_train(config=None, *, resume=None, log=None):
        calls.append({"resume": resume})
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr("medspikeformer.engine.trainer.train", fake_train)
    assert main(_cli_args("compare", out, cache, ["qk"])) == 0
    assert calls == []
    assert "finished earlier" in capsys.readouterr().out

    # --- an interrupted row (last.pt kept, no result) resumes through the engine's resume
    qk_dir = out / "rows" / "qk" / "seed0"
    (qk_dir / "result.json").unlink()
    (qk_dir / "trained.json").unlink()
    from medspikeformer.engine import trainer

    monkeypatch.undo()
    real_train = trainer.train

    def spy_train(config=None, *, resume=None, log=None):
        calls.append({"resume": resume})
        return real_train(config, resume=resume, log=log)

    monkeypatch.setattr("medspikeformer.engine.trainer.train", spy_train)
    assert main(_cli_args("compare", out, cache, ["qk"])) == 0
    assert calls == [{"resume": qk_dir}]
    again = json.loads((qk_dir / "result.json").read_text())
    assert again["per_image_dice"] == pytest.approx(res["qk"]["per_image_dice"])

    # --- another budget into the same folder is refused
    args = [*_cli_args("compare", out, cache, ["qk"]), "--set", "train.epochs=2"]
    assert main(args) == 2
    assert "another shared configuration" in capsys.readouterr().err
    assert main([*_cli_args("compare", out, cache, ["qk"]), "--checkpoint", "best"]) == 2
    assert "checkpoint='last'" in capsys.readouterr().err


def test_ablation_end_to_end_with_alias(tmp_path: Path) -> None:
    out, cache = tmp_path / "abl", tmp_path / "cache"
    spec = ExperimentSpec(
        "ablation", "synthetic", out=out, rows=["wo_sa", "t2"], sets=tiny_sets(cache)
    )
    result = run_experiment(spec, log=None)
    # T = 2 is the shared recipe's T, so that row is the full model's run, not a second training.
    assert result.trained == ["full/seed0", "wo_sa/seed0"]
    assert result.aliased == {"t2": "full"}
    assert [s.key for s in result.summaries] == ["full", "wo_sa", "t2"]
    full, _wo_sa, t2 = result.summaries
    assert t2.values["miou"] == full.values["miou"] and t2.test.note == "all differences zero"
    table = _table_lines(result.markdown.read_text())
    assert [r[0] for r in table[1:]] == [
        "Ours (full)",
        "w/o SA (no teacher)",
        "T = 2 (same run as Ours (full))",
    ]
    assert "1 (identical, n=3)" in table[3][-2]
    assert (
        json.loads((out / "rows" / "wo_sa" / "seed0" / "result.json").read_text())["run"]["teacher"]
        == "none"
    )
    assert not (out / "rows" / "t2").exists()
    summary = json.loads(result.summary_json.read_text())
    assert summary["reference"] == "full" and len(summary["rows"]) == 3
    for p in result.plots:
        assert p.is_file() and p.stat().st_size > 1000


def _fake_runner(scores: dict[str, list[float]]):
    """A row runner without training: per-image Dice from ``scores`` shifted a little per seed."""

    def run(spec, row, k, run_dir, config):
        # Every seed of every row is pinned to the experiment's split (and synthetic images).
        assert config.data.split_spec == str(Path(spec.out) / "split.json")
        assert config.data.options["seed"] == 41 and config.train.seed == 41 + k
        dice = {f"im{i}": min(1.0, v + 0.01 * k) for i, v in enumerate(scores[row.key])}
        result = {
            "row": row.key,
            "label": row.label,
            "seed": config.train.seed,
            "metrics": {
                "miou": 0.5 + 0.1 * k,
                "dsc": 0.6,
                "acc": 0.9,
                "spe": 0.9,
                "sen": 0.5,
                "dice_per_image": sum(dice.values()) / len(dice),
            },
            "per_image_dice": dice,
            "profile": {"params_m": 1.0, "gflops": 2.0, "firing_rate": 0.1, "energy_mj": 0.5},
            "run": {"train_time_s": 60.0},
            "n_test": len(dice),
            "config": {"train": {"epochs": 1}, "data": {"size": 32}},
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "result.json").write_text(json.dumps(result))
        return result

    return run


def test_seeds_give_mean_std_and_paired_test(tmp_path: Path) -> None:
    from scipy.stats import wilcoxon

    scores = {
        "medspikeformer": [0.9, 0.8, 0.7, 0.95, 0.85, 0.6, 0.75],
        "sdt": [0.5, 0.6, 0.4, 0.7, 0.65, 0.3, 0.2],
    }
    spec = ExperimentSpec(
        "compare",
        "synthetic",
        out=tmp_path / "s",
        rows=["sdt"],
        seeds=3,
        sets=tiny_sets(tmp_path / "c"),
    )
    result = run_experiment(spec, log=None, row_runner=_fake_runner(scores))
    ref, sdt = result.summaries
    assert ref.seeds == [41, 42, 43] and sdt.seeds == [41, 42, 43]
    assert ref.values["miou"] == pytest.approx((0.6, 0.1))
    # Seed shift is the same on both sides, so seed-averaged differences equal the raw ones.
    assert sdt.test.p_value == pytest.approx(
        wilcoxon(scores["medspikeformer"], scores["sdt"]).pvalue
    )
    assert sorted(sdt.per_seed_p) == [41, 42, 43]
    md = result.markdown.read_text()
    assert "0.6000 ± 0.1000" in md and "| 3 |" in md


def test_row_configs_share_the_budget(tmp_path: Path) -> None:
    spec = ExperimentSpec("compare", "synthetic", out=tmp_path, sets=tiny_sets(tmp_path / "c"))
    shared = pin_split(base_config(spec), tmp_path)
    split = tmp_path / "split.json"
    assert split.is_file() and shared.data.split_spec == str(split)
    by = {r.key: r for r in compare_rows() + ablation_rows()}
    ref = resolve_row_config(spec, by["medspikeformer"], 0, tmp_path / "a", shared)
    ssa1 = resolve_row_config(spec, by["ssa"], 1, tmp_path / "b", shared)
    unet = resolve_row_config(spec, by["unet"], 0, tmp_path / "c", shared)
    t1 = resolve_row_config(spec, by["t1"], 0, tmp_path / "d", shared)
    wo_kl = resolve_row_config(spec, by["wo_kl"], 0, tmp_path / "e", shared)
    assert ref.model.options["base_channels"] == 4 and ref.model.options["timesteps"] == 2
    assert ssa1.model.name == "ssa" and ssa1.model.options["num_units"] == 2
    assert ssa1.train.seed == ref.train.seed + 1 and ssa1.teacher.mode == "none"
    assert ssa1.data.split_spec == ref.data.split_spec  # same test images for every seed
    assert ssa1.data.options["seed"] == ref.data.options["seed"]  # synthetic images pinned too
    assert unet.model.options == {}  # MedSpikeFormer width/depth do not apply to the U-Net
    assert t1.model.options["timesteps"] == 1 and t1.model.options["base_channels"] == 4
    assert wo_kl.teacher.align.use_kl is False and wo_kl.teacher.align.use_l2 is True
    for cfg in (ref, ssa1, unet, t1, wo_kl):
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.data.size) == (1, 4, 32)
        assert cfg.optim.lr == ref.optim.lr


def test_bad_requests_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown compare row"):
        run_experiment(
            ExperimentSpec("compare", "synthetic", out=tmp_path, rows=["resnet"]), log=None
        )
    with pytest.raises(ConfigError, match="at least one seed"):
        run_experiment(ExperimentSpec("compare", "synthetic", out=tmp_path, seeds=0), log=None)


def test_row_locked_by_another_live_process_is_skipped(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    scores = {"medspikeformer": [0.9, 0.8, 0.7], "qk": [0.5, 0.6, 0.4]}
    out = tmp_path / "busy"
    lock = out / "rows" / "qk" / "seed0" / ".lock"
    lock.parent.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        spec = ExperimentSpec(
            "compare", "synthetic", out=out, rows=["qk"], sets=tiny_sets(tmp_path / "c")
        )
        result = run_experiment(spec, log=None, row_runner=_fake_runner(scores))
        assert result.busy == ["qk/seed0"] and result.trained == ["medspikeformer/seed0"]
        assert [s.key for s in result.summaries] == ["medspikeformer"]
    finally:
        other.kill()
        other.wait()
    # Once that process is gone, the next invocation trains the row (the stale lock is ignored).
    result = run_experiment(spec, log=None, row_runner=_fake_runner(scores))
    assert result.trained == ["qk/seed0"] and result.reused == ["medspikeformer/seed0"]
    assert [s.key for s in result.summaries] == ["medspikeformer", "qk"]


def test_reproduce_runs_table1_row_and_prints_paper_figure(tmp_path: Path, capsys) -> None:
    from medspikeformer.cli.experiment import table1_line

    spec = ExperimentSpec("reproduce", "kvasir", out=tmp_path / "r", sets=tiny_sets(tmp_path / "c"))
    assert [r.key for r in spec.row_list()] == ["medspikeformer"]
    assert spec.reference == "medspikeformer"
    scores = {"medspikeformer": [0.9, 0.8, 0.7, 0.95]}
    result = run_experiment(
        ExperimentSpec(
            "reproduce", "synthetic", out=tmp_path / "s", sets=tiny_sets(tmp_path / "c")
        ),
        log=None,
        row_runner=_fake_runner(scores),
    )
    (ref,) = result.summaries
    ref.paper = ("dsc", 0.9081)  # what the kvasir row carries
    line = table1_line(result.summaries, "kvasir")
    assert line.splitlines()[0] == "Table 1 (kvasir, DSC):"
    assert "paper 0.9081" in line and f"ours {ref.values['dsc'][0]:.4f}" in line
    with pytest.raises(ConfigError, match="compare, ablation or reproduce"):
        ExperimentSpec("table9", "kvasir", out=tmp_path).row_list()


def test_dsc_over_time_reads_cumulative_minutes(tmp_path: Path) -> None:
    from medspikeformer.experiments.plots import dsc_over_time, plot_dsc_over_time

    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("epoch,time_s,val_dsc\n1,60,0.2\n2,30,0.5\n3,90,0.6\n")
    minutes, dsc = dsc_over_time(csv_path)
    assert minutes == pytest.approx([1.0, 1.5, 3.0]) and dsc == pytest.approx([0.2, 0.5, 0.6])
    png = plot_dsc_over_time({"a": csv_path}, tmp_path / "c.png", target=0.75)
    with Image.open(png) as im:
        assert im.format == "PNG"
    (tmp_path / "bad.csv").write_text("epoch,val_dsc\n1,0.2\n")
    with pytest.raises(ValueError, match="time_s"):
        dsc_over_time(tmp_path / "bad.csv")


def test_experiment_help_names_every_ablation_row(capsys) -> None:
    from medspikeformer.cli import main
    from medspikeformer.experiments.rows import ABLATION_ROWS

    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for row in ABLATION_ROWS:
        assert f" {row.key} " in text or f" {row.key})" in text, row.key


def test_a_damaged_result_is_kept_aside_and_the_row_scored_again(tmp_path: Path) -> None:
    scores = {"medspikeformer": [0.9, 0.8, 0.7]}
    out = tmp_path / "dmg"
    spec = ExperimentSpec("reproduce", "synthetic", out=out, sets=tiny_sets(tmp_path / "c"))
    first = run_experiment(spec, log=None, row_runner=_fake_runner(scores))
    assert first.trained == ["medspikeformer/seed0"]
    result = out / "rows" / "medspikeformer" / "seed0" / "result.json"
    result.write_text('{"test_metrics": {"dsc": 0.9')  # cut short
    lines: list[str] = []
    again = run_experiment(spec, log=lines.append, row_runner=_fake_runner(scores))
    assert again.trained == ["medspikeformer/seed0"] and again.reused == []
    assert json.loads(result.read_text())  # written again, whole
    aside = result.with_name("result.json.damaged")
    assert aside.read_text() == '{"test_metrics": {"dsc": 0.9'
    assert any("damaged record" in line and "result.json.damaged" in line for line in lines)


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.write_text("not a folder")
    spec = ExperimentSpec("reproduce", "synthetic", out=out, sets=tiny_sets(tmp_path / "c"))
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        run_experiment(spec, log=None, row_runner=_fake_runner({"medspikeformer": [0.5]}))
    assert out.read_text() == "not a folder"
