"""Smoke tests of the benchmark suite: each benchmark runs at a tiny size and returns a
well-formed row. No timing assertions — only structure, statuses and the numbers that are
deterministic (FLOP counts, firing rates, target bookkeeping)."""

from __future__ import annotations

import json
import math

import pytest
import torch

import bench_attention
import bench_common
import bench_infer
import bench_lif
import bench_train
import run_all
from tiny_models import TINY_MSF

TINY = TINY_MSF


def assert_row(row: dict, suite: str, status: str = "ok") -> None:
    """Mandatory keys, JSON-serialisable, and for ok rows a positive finite median time."""
    for key in ("suite", "name", "params", "time_s", "status"):
        assert key in row, f"row lacks {key!r}: {row}"
    assert row["suite"] == suite
    assert row["status"] == status, row.get("notes")
    json.dumps(row)
    if status == "ok":
        assert row["time_s"] > 0 and math.isfinite(row["time_s"])
        assert len(row["times_s"]) >= 1
        assert min(row["times_s"]) * 0.999 <= row["time_s"] <= max(row["times_s"]) * 1.001


def test_time_fn_counts_calls_and_reports_median() -> None:
    calls = []
    out = bench_common.time_fn(lambda: calls.append(1), warmup=2, repeat=3)
    assert len(calls) == 5
    assert len(out["times_s"]) == 3 and out["time_s"] >= 0 and out["cpu_s"] >= 0


def test_matmul_peak_row() -> None:
    row = bench_common.matmul_peak_gflops(64, repeat=2)
    assert_row(row, "peak")
    assert row["gflops"] > 0
    assert row["gflops"] == pytest.approx(2 * 64**3 / row["time_s"] / 1e9, rel=0.01)


def test_count_flops_matches_matmul_formula() -> None:
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert bench_common.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_add_mfu() -> None:
    peak = {"gflops": 50.0, "gflop_per_cpu_s": 25.0}
    row = bench_common.add_mfu({"gflop": 10.0, "time_s": 2.0, "cpu_s": 4.0}, peak)
    assert row["gflops"] == 5.0 and row["mfu"] == pytest.approx(0.1)
    assert row["mfu_cpu"] == pytest.approx(0.1)  # 10 GFLOP / 4 CPU-s over 25 GFLOP per CPU-s
    assert "mfu" not in bench_common.add_mfu({"gflop": None, "time_s": 1.0}, peak)
    assert bench_common.add_mfu({"gflop": 10.0, "time_s": 2.0}, 50.0)["mfu"] == pytest.approx(0.1)


def test_machine_info_fields() -> None:
    info = bench_common.machine_info()
    assert {"cpu", "cores", "torch", "threads", "device", "date_utc"} <= set(info)
    assert info["torch"] == torch.__version__


@pytest.mark.parametrize("variant", ["eager", "spikingjelly"])
def test_lif_rows(variant: str) -> None:
    if variant == "spikingjelly":
        pytest.importorskip("spikingjelly.activation_based.neuron")
    row = bench_lif.bench_lif(variant, shape=(2, 1, 2, 4, 4), warmup=1, repeat=2)
    assert_row(row, "lif")
    assert 0.0 < row["firing_rate"] < 1.0
    assert row["elements"] == 2 * 1 * 2 * 4 * 4


def test_lif_same_input_same_firing_rate_as_reference() -> None:
    """Eager and spikingjelly rows see the same input, so their firing rates must agree."""
    pytest.importorskip("spikingjelly.activation_based.neuron")
    shape = (4, 1, 3, 8, 8)
    ours = bench_lif.bench_lif("eager", shape=shape, warmup=0, repeat=1)
    ref = bench_lif.bench_lif("spikingjelly", shape=shape, warmup=0, repeat=1)
    assert ours["firing_rate"] == ref["firing_rate"]


@pytest.mark.slow
def test_lif_compiled_row() -> None:
    row = bench_lif.bench_lif("compiled", shape=(2, 1, 2, 4, 4), warmup=1, repeat=2)
    assert_row(row, "lif")


def test_lif_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown LIF variant"):
        bench_lif.bench_lif("nope", shape=(2, 1, 1, 2, 2))


@pytest.mark.parametrize("kind", ["block", "conv1x1", "core", "quadratic"])
def test_attention_rows(kind: str) -> None:
    row = bench_attention.bench_attention(kind, side=8, dim=8, num_heads=2, batch=1, repeat=2)
    assert_row(row, "attention")
    assert row["params"]["N"] == 64
    assert row["gflop"] > 0


def test_attention_conv_flops_exact() -> None:
    """A 1×1 conv C→C fwd+bwd (input grad + weight grad) costs 3 × 2·N·C²·T·B FLOPs."""
    row = bench_attention.bench_attention("conv1x1", side=4, dim=8, timesteps=2, batch=1, repeat=1)
    assert row["gflop"] * 1e9 == pytest.approx(3 * 2 * 16 * 8 * 8 * 2)


def test_core_is_linear_and_quadratic_is_not() -> None:
    """Core FLOPs grow ∝ N, the literal Eq. 9 form ∝ N² (doubling the side: ×4 vs ×16)."""
    f = {}
    for kind in ("core", "quadratic"):
        for side in (8, 16):
            row = bench_attention.bench_attention(kind, side=side, dim=8, batch=1, repeat=1)
            f[kind, side] = row["gflop"]
    assert f["core", 16] / f["core", 8] == pytest.approx(4.0, rel=0.05)
    assert f["quadratic", 16] / f["quadratic", 8] > 12.0


def test_quadratic_skipped_over_budget() -> None:
    row = bench_attention.bench_attention("quadratic", side=64, dim=8, quadratic_budget_gb=1e-3)
    assert_row(row, "attention", status="skipped")
    assert "GB" in row["notes"]


@pytest.mark.parametrize("teacher", ["none", "joint", "frozen"])
def test_train_rows_medspikeformer(teacher: str) -> None:
    row = bench_train.bench_train(
        "medspikeformer", batch=2, size=16, teacher=teacher, warmup=1, repeat=1, overrides=TINY
    )
    assert_row(row, "train")
    assert row["gflop"] > 0 and row["params_m"] > 0
    if teacher == "joint":
        assert row["teacher_params_m"] > 0


def test_train_step_updates_weights() -> None:
    step, _ = bench_train.build_step("medspikeformer", 2, 16, "joint", overrides=TINY)
    ts = step.training_step  # the engine's TrainingStep: student and teacher optimisers
    model_params = [o for o in (ts.opt, ts.t_opt) if o is not None]
    before = [
        [p.detach().clone() for g in o.param_groups for p in g["params"]] for o in model_params
    ]
    step()
    after = [[p.detach() for g in o.param_groups for p in g["params"]] for o in model_params]
    assert len(before) == 2, "joint mode must step the student and the teacher"
    for b, a in zip(before, after):
        assert any(not torch.equal(x, y) for x, y in zip(b, a))


def test_train_flops_scaled_from_small_batch_equal_direct_count() -> None:
    """The row counts FLOPs on a batch-2 step and scales; a direct batch-3 count must agree."""
    row = bench_train.bench_train("unet", batch=3, size=32, warmup=0, repeat=1)
    assert_row(row, "train")
    step, _ = bench_train.build_step("unet", 3, 32)
    assert row["gflop"] * 1e9 == pytest.approx(bench_common.count_flops(step), rel=1e-9)


def test_train_bad_teacher_mode_is_a_failed_row() -> None:
    row = bench_train.bench_train("medspikeformer", 1, 16, teacher="bogus", overrides=TINY)
    assert_row(row, "train", status="failed")
    assert "teacher" in row["notes"]


def test_disc_masks_binary() -> None:
    m = bench_train.disc_masks(3, 20, 24)
    assert m.shape == (3, 1, 20, 24)
    assert set(m.unique().tolist()) <= {0.0, 1.0} and m.sum() > 0


@pytest.mark.parametrize("fuse", [False, True])
def test_infer_rows(fuse: bool) -> None:
    if fuse:
        pytest.importorskip("medspikeformer.models.fuse")
    row = bench_infer.bench_infer("medspikeformer", size=16, fuse=fuse, repeat=2, overrides=TINY)
    assert_row(row, "infer")
    assert row["params"]["variant"] == ("fused" if fuse else "eager")
    assert row["gflop"] > 0


def test_infer_variant_plan() -> None:
    """Each ``+``-joined infer variant becomes the bench options it names."""
    variants = "eager,fused+lif-compiled,NHWC+compiled"
    args = run_all.parse_args(
        ["--suites", "infer", "--infer-models", "medspikeformer", "--infer-variants", variants]
    )
    got = [kw for mod, _, kw, _ in run_all.build_plan(args) if mod == "bench_infer"]
    assert [(k["fuse"], k["compile"], k["channels_last"]) for k in got] == [
        (False, False, False),
        (True, False, False),
        (False, True, True),
    ]
    assert [k["overrides"].get("compile_neurons", False) for k in got] == [False, True, False]


def test_run_isolated_peak_rss_sees_the_allocation() -> None:
    row = bench_common.run_isolated("bench_common", "hold_memory", {"gb": 0.5, "seconds": 0.1})
    assert row["status"] == "ok", row.get("notes")
    assert row["peak_rss_gb"] >= 0.5  # the child's own peak includes its 0.5 GB block


@pytest.mark.slow
def test_run_isolated_reports_peak_rss() -> None:
    kwargs = {"model": "unet", "batch": 2, "size": 32, "warmup": 0, "repeat": 1}
    row = bench_common.run_isolated("bench_train", "bench_train", kwargs, timeout_s=300)
    assert_row(row, "train")
    assert 0.05 < row["peak_rss_gb"] < 8


def test_run_isolated_watchdog_kills_memory_hog() -> None:
    row = bench_common.run_isolated(
        "bench_common", "hold_memory", {"gb": 1.0, "seconds": 5.0}, mem_limit_gb=0.6
    )
    assert row["status"] == "killed"
    assert row["time_s"] is None


def test_run_isolated_failure_is_a_row() -> None:
    row = bench_common.run_isolated("bench_train", "no_such_function", {}, timeout_s=120)
    assert row["status"] == "failed" and "exit" in row["notes"]


def _ok(suite: str, time_s: float, **params) -> dict:
    return {"suite": suite, "name": "x", "status": "ok", "time_s": time_s, "params": params}


def test_check_targets_logic() -> None:
    rows = [
        {**_ok("train", 4.0, model="medspikeformer", teacher="none", batch=2, size=256), "peak_rss_gb": 5.0, "mfu": 0.55},
        {**_ok("train", 6.0, model="medspikeformer", teacher="joint", batch=2, size=256), "peak_rss_gb": 7.0, "mfu": 0.4},
        _ok("infer", 0.5, model="medspikeformer", variant="eager", batch=1, size=256),
        _ok("attention", 3.0, kind="block", side=256),
        _ok("attention", 1.0, kind="conv1x1", side=256),
        _ok("lif", 4.0, variant="eager"),
        _ok("lif", 1.0, variant="compiled"),
        {**_ok("train", 9.0, model="ssa", teacher="none", batch=2, size=256)},
    ]  # fmt: skip
    got = {t["target"]: t for t in run_all.check_targets(rows)}
    assert got["train b2 256² student: MFU"]["met"] is True  # 0.55 ≥ 0.5
    assert got["train b2 256² student: peak RSS"]["met"] is True
    assert got["train b2 256² joint: peak RSS"]["met"] is False  # 7 GB > 6 GB
    assert got["train b8 256² joint (paper recipe): peak RSS"]["measured"] is None
    assert got["attention block / conv1x1 at 256²"]["measured"] == 3.0
    assert got["attention block / conv1x1 at 256²"]["met"] is False
    assert got["LIF compiled speed-up over eager"]["met"] is True
    assert got["MFU stated: x"]["met"] is False  # the ssa row has no MFU
    assert not any("authors" in t for t in got)  # no baseline times: no ratio targets


def test_side_by_side_ratios_go_through_the_baseline() -> None:
    """ours / authors = (ours / baseline) × (baseline / authors of issue 14's table)."""
    joint = _ok("train", 6.0, model="medspikeformer", teacher="joint", batch=2, size=256)
    joint["name"] = "train joint"
    joint["baseline"] = {"time_s": 12.0, "peak_rss_gb": 5.0}
    infer = _ok("infer", 0.5, model="medspikeformer", variant=run_all.DEFAULT_INFER_VARIANT,
                batch=1, size=256)  # fmt: skip
    infer["baseline"] = {"time_s": 1.0}
    plain = _ok("train", 3.0, model="medspikeformer", teacher="none", batch=2, size=256)
    entries = {e["workload"]: e for e in run_all.side_by_side([joint, infer, plain])}
    assert set(entries) == {"train joint", "x"}  # the row without a baseline time is left out
    e = entries["train joint"]
    assert e["vs_baseline"] == 0.5
    assert e["vs_authors"] == round(0.5 * 18.0 / 23.8, 3)
    assert e["target"] == 0.4 and e["met"] is True
    assert entries["x"]["vs_authors"] == round(0.5 * 1.65 / 3.39, 3)
    assert entries["x"]["met"] is True  # 0.5 × 1.65 / 3.39 = 0.243 ≤ 0.25
    got = {t["target"]: t for t in run_all.check_targets([joint])}
    assert got["train joint: ours / authors (via the baseline)"]["met"] is True


def test_baseline_runs_its_own_defaults() -> None:
    """The baseline times a train case as given but without counting FLOPs first, and the
    default inference case without the BN folding it did not have; nothing else."""
    train = {"model": "medspikeformer", "batch": 2, "size": 256, "overrides": {}}
    assert run_all.baseline_kwargs("bench_train", train) == {**train, "count": False}
    infer = {"fuse": True, "compile": False, "overrides": {"compile_neurons": True}}
    assert run_all.baseline_kwargs("bench_infer", infer)["fuse"] is False
    assert run_all.baseline_kwargs("bench_infer", {**infer, "fuse": False}) is None
    assert run_all.baseline_kwargs("bench_lif", {}) is None


def test_run_isolated_in_another_checkout(tmp_path) -> None:
    """``repo=`` runs the case with that checkout's benchmarks and sources (here: a copy of
    bench_common only, whose rows carry a marker the project's own never do)."""
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (tmp_path / "src").mkdir()
    code = (bench_common.BENCH_DIR / "bench_common.py").read_text()
    code = code.replace('"self-test", "hold_memory"', '"self-test", "hold_memory-elsewhere"')
    (bench / "bench_common.py").write_text(code)
    row = bench_common.run_isolated(
        "bench_common", "hold_memory", {"gb": 0.01, "seconds": 0.0}, repo=tmp_path
    )
    assert row["status"] == "ok", row.get("notes")
    assert row["name"] == "hold_memory-elsewhere"


def test_architecture_overrides_do_not_count_for_targets() -> None:
    row = _ok("train", 1.0, model="medspikeformer", teacher="none", batch=2, size=256)
    row["params"]["overrides"] = {"base_channels": 8}
    assert run_all.find_row([row], "train", "medspikeformer", 2, 256) is None
    row["params"]["overrides"] = {"checkpoint_attention": False, "compile_neurons": True}
    assert run_all.find_row([row], "train", "medspikeformer", 2, 256) is row


def test_parse_args_and_plan() -> None:
    args = run_all.parse_args(
        [
            "--quick",
            "--suites",
            "train",
            "--models",
            "medspikeformer+joint,unet",
            "--set",
            "timesteps=2",
        ]
    )
    plan = run_all.build_plan(args)
    assert [(m, f) for m, f, _, _ in plan] == [("bench_train", "bench_train")] * 2
    first = plan[0][2]
    assert first["teacher"] == "joint" and first["overrides"]["timesteps"] == 2
    assert plan[1][2]["overrides"] == {}  # unet takes no MedSpikeFormer options
    assert all(isolated for *_, isolated in plan)
    assert run_all.parse_train_configs("2x256,8x128") == [(2, 256), (8, 128)]
    with pytest.raises(SystemExit):
        run_all.parse_args(["--suites", "nope"])


def test_main_writes_json_and_markdown(tmp_path) -> None:
    out = tmp_path / "res"
    rc = run_all.main(
        [
            "--quick",
            "--suites",
            "attention",
            "--attention-sides",
            "8",
            "--repeat",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["machine"]["threads"] >= 1 and payload["partial"] is False
    suites = [r["suite"] for r in payload["rows"]]
    assert suites[0] == "peak" and suites.count("attention") == 5
    assert suites[-1] == "peak"  # read again at the end; MFU uses the faster reading
    assert payload["machine"]["matmul_peak_gflops"] == max(
        r["gflops"] for r in payload["rows"] if r["suite"] == "peak"
    )
    kinds = [r["params"]["kind"] for r in payload["rows"] if r["suite"] == "attention"]
    assert kinds == ["block", "block-lif-compiled", "conv1x1", "core", "quadratic"]
    assert all(r.get("mfu") is not None for r in payload["rows"] if r["suite"] == "attention")
    md = (out / "results.md").read_text()
    assert "| suite |" in md and "matmul" in md


def test_fit_check_reads_its_points_from_metrics_csv(tmp_path) -> None:
    """The fitting check's curve comes from the run's metrics.csv (so a resumed or finished run
    gives the same row): epoch 1 and every 10th, DSC and the segmentation loss bce + dice."""
    import fit_check

    lines = ["epoch,train_bce,train_dice,val_dsc,time_s"]
    lines += [f"{e},{0.5 / e},{0.25 / e},{e / 25},{1.0 + e % 2}" for e in range(1, 21)]
    (tmp_path / "metrics.csv").write_text("\n".join(lines) + "\n")
    points, times = fit_check.read_points(tmp_path / "metrics.csv")
    assert [p["epoch"] for p in points] == [1, 10, 20]
    assert points[1] == {"epoch": 10, "dsc": 0.4, "seg": pytest.approx(0.075)}
    assert len(times) == 20 and times[:2] == [2.0, 1.0]
