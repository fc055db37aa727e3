"""The GPU check's CPU form (``--device cpu --quick``) end to end, so the prepared script cannot
rot before it meets a GPU; its interrupt, budget, preflight and missing-data paths; the peak each
row is scored against; the LIF fallback a row must name. No timing assertions."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

import gpu_check

#: Ceilings far above the few seconds each part takes: on a machine shared with other work a run
#: takes longer, and a part cut for time would fail a test for no defect.
ROOMY = ["--budget-s", "3600", "--time-scale", "15"]


def _parts(out: Path) -> dict[str, Any]:
    return json.loads((out / "gpu_check.json").read_text())["parts"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("gc")
    return gpu_check.main(["--device", "cpu", "--quick", "--out", str(out), *ROOMY]), out


def test_quick_cpu_run_writes_every_part_and_the_summary(quick_run: tuple[int, Path]) -> None:
    rc, out = quick_run
    assert rc == 0
    parts = _parts(out)
    assert tuple(parts) == gpu_check.PART_NAMES
    for i, name in enumerate(gpu_check.PART_NAMES):
        own = json.loads((out / f"part{i}_{name}.json").read_text())
        assert own == parts[name]
        assert own["status"] in ("ok", "skipped"), (name, own)
    md = (out / "gpu_check.md").read_text()
    for i, name in enumerate(gpu_check.PART_NAMES):
        assert f"| {i} {name} | {parts[name]['status']} |" in md
    assert parts["preflight"]["versions"]["torch"] == torch.__version__
    # 1: the gpu-marked tests were collected and skipped (no CUDA here), none failed
    assert parts["tests"]["counts"].get("skipped", 0) >= 1
    # 4: needs CUDA, and says so instead of failing
    assert parts["compile"]["status"] == "skipped" and "needs CUDA" in parts["compile"]["notes"]


def test_quick_step_rows_say_what_ran_and_against_which_peak(quick_run: tuple[int, Path]) -> None:
    step = _parts(quick_run[1])["step"]
    rows = {r["label"]: r for r in step["rows"]}
    assert set(rows) == {v["label"] for v in gpu_check.step_variants(cuda=False)}
    for label in ("bf16 LIF compiled", "fp32 TF32 on"):
        assert rows[label]["status"].startswith(gpu_check.NEEDS_CUDA), rows[label]
    measured = [r for r in rows.values() if r["status"] == "ok"]
    assert {r["label"] for r in measured} == {
        "bf16 base",
        "bf16 recompute off",
        "bf16 channels_last",
        "fp32 TF32 off",
    }
    for r in measured:
        assert r["step_ms"] > 0 and r["mfu"] > 0 and r["ops_per_step"] > 0
        assert r["lif_backend"] == "eager"
        # tiny frames: auto decides against recomputation, as off does
        assert r["recomputes"] is False
        assert r["peak_used"] == ("bf16" if r["precision"] == "bf16" else "fp32")
    assert step["peaks"]["bf16"]["gflops"] > 0 and "tf32" not in step["peaks"]


def test_quick_trace_loader_precision_deterministic(quick_run: tuple[int, Path]) -> None:
    out = quick_run[1]
    parts = _parts(out)
    trace = parts["trace"]
    assert trace["top"] and trace["gpu_idle_fraction"] is None
    assert (out / trace["trace_file"]).stat().st_size > 0
    rows = parts["loader"]["rows"]
    # the most workers twice: kept across epochs (the trainer's way) and re-forked every epoch
    assert [(r["num_workers"], r["persistent_workers"]) for r in rows] == [
        (0, False),
        (2, True),
        (2, False),
    ]
    for r in rows:
        assert r["status"] == "ok", r
        for epoch in (r["first_epoch"], r["later_epochs_mean"]):
            pieces = ("data_wait_s", "step_s", "val_s", "ckpt_s", "other_s")
            assert sum(epoch[k] for k in pieces) == pytest.approx(epoch["epoch_s"], abs=0.02)
            assert epoch["val_s"] > 0 and epoch["ckpt_s"] > 0 and epoch["data_wait_s"] > 0
    prec = parts["precision"]
    assert prec["neuron_layers"] > 0 and 0.9 < prec["spike_agreement"] <= 1.0
    assert 0.0 <= prec["mask_agreement"] <= 1.0
    det = parts["deterministic"]
    assert det["repeatable"] is True and len(det["weight_digests"]) == 2


@pytest.mark.parametrize(
    ("precision", "tf32", "peak"),
    [
        ("bf16", False, "bf16"),
        ("bf16", True, "bf16"),
        ("fp32", True, "tf32"),
        ("fp32", False, "fp32"),
    ],
)
def test_each_arithmetic_is_scored_against_its_own_peak(
    precision: str, tf32: bool, peak: str
) -> None:
    assert gpu_check.peak_key(precision, tf32) == peak


def test_gpu_rows_cover_every_switch_and_need_nothing_skipped() -> None:
    rows = gpu_check.step_variants(cuda=True)
    assert all(gpu_check.needs_cuda(r, cuda=True) is None for r in rows)
    assert {r["lif"] for r in rows} == {"compiled", "eager"}
    assert {r["recompute"] for r in rows} == {"auto", False}
    assert {r["channels_last"] for r in rows} == {True, False}
    assert {(r["precision"], r["tf32"]) for r in rows if r["precision"] == "fp32"} == {
        ("fp32", True),
        ("fp32", False),
    }


def test_a_compiled_lif_fallback_is_named_and_not_kept_for_later_rows(monkeypatch) -> None:
    from medspikeformer.neurons import LIFNeuron, lif

    monkeypatch.setattr(lif, "_KERNELS", {})
    model = torch.nn.Sequential(LIFNeuron(compile=True))
    kernels = model[0]._kernels
    assert gpu_check.lif_backend(model, "compiled") == "compiled"

    def broken(*args):
        raise RuntimeError("triton: out of shared memory")

    kernels.forward = broken
    notes: list[str] = []
    with gpu_check.captured_warnings(notes), torch.no_grad():
        model(torch.randn(2, 3, 4))
    assert any("falling back to eager" in n for n in notes), notes
    assert gpu_check.lif_backend(model, "compiled") == "eager (compiled LIF fell back)"
    assert gpu_check.forget_failed_lif_kernels() == ["lif/fused"]
    fresh = LIFNeuron(compile=True)._kernels
    assert fresh is not kernels and fresh.compiled


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_keeps_the_running_parts_rows(tmp_path: Path, monkeypatch, sig) -> None:
    def interrupted_part(c: gpu_check.Check, part: dict[str, Any]) -> None:
        part["rows"] = [{"label": "measured before the signal", "status": "ok"}]
        c.save()
        os.kill(os.getpid(), sig)
        part["rows"].append({"label": "never reached"})

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setitem(gpu_check.PARTS, "trace", (interrupted_part, 10, 10))
    out = tmp_path / "gc"
    argv = ["--device", "cpu", "--quick", "--out", str(out), "--parts", "trace,precision"]
    assert gpu_check.main(argv) == 130
    parts = _parts(out)
    trace = json.loads((out / "part3_trace.json").read_text())
    assert trace == parts["trace"]
    assert trace["status"] == "interrupted" and sig.name in trace["notes"]
    assert [r["label"] for r in trace["rows"]] == ["measured before the signal"]
    assert (
        parts["precision"]["status"] == "skipped" and "interrupted" in parts["precision"]["notes"]
    )
    assert "| 3 trace | interrupted |" in (out / "gpu_check.md").read_text()
    assert signal.getsignal(signal.SIGTERM) is before


def test_spent_budget_skips_parts_but_still_reports(tmp_path: Path) -> None:
    out = tmp_path / "gc"
    argv = ["--device", "cpu", "--quick", "--out", str(out), "--budget-s", "0.5"]
    argv += ["--parts", "step,loader"]
    assert gpu_check.main(argv) == 0
    parts = _parts(out)
    assert all(p["status"] == "skipped" for p in parts.values()), parts


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA preflight")
def test_preflight_without_cuda_fails_fast_with_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gc"
    assert gpu_check.main(["--device", "cuda", "--out", str(out)]) == 2
    parts = _parts(out)
    assert list(parts) == ["preflight"] and parts["preflight"]["status"] == "failed"
    assert "--device cpu --quick" in parts["preflight"]["error"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[gpu-check] preflight failed:")
    assert not (out / "part1_tests.json").exists()


def test_missing_kvasir_sample_is_a_skip_with_a_message(tmp_path: Path) -> None:
    out = tmp_path / "gc"
    argv = ["--device", "cpu", "--out", str(out), "--parts", "loader"]
    assert gpu_check.main([*argv, "--data-root", str(tmp_path / "absent")]) == 0
    loader = _parts(out)["loader"]
    assert loader["status"] == "skipped" and "not found" in loader["notes"]


def test_a_failing_part_is_recorded_and_the_rest_runs(tmp_path: Path, monkeypatch) -> None:
    def boom(c, part):
        raise RuntimeError("CUDA error: device-side assert")

    monkeypatch.setitem(gpu_check.PARTS, "tests", (boom, 10, 10))
    out = tmp_path / "gc"
    argv = ["--device", "cpu", "--quick", "--out", str(out), "--parts", "tests,precision", *ROOMY]
    assert gpu_check.main(argv) == 0
    parts = _parts(out)
    assert parts["tests"]["status"] == "failed" and "device-side" in parts["tests"]["error"]
    assert parts["precision"]["status"] == "ok"


def test_compile_rows_tell_a_compiled_forward_from_the_eager_fallback(tmp_path: Path) -> None:
    from medspikeformer.engine import TrainingStep, load_config

    cfg = load_config(overrides={"model": dict(gpu_check.TINY), "data": {"size": 16}})
    ts = TrainingStep.from_config(cfg)
    assert not gpu_check.is_compiled(ts.student_fwd)  # the plain forward, as after a fallback
    assert gpu_check.is_compiled(torch.compile(ts.student_fwd))  # lazy: nothing compiles here


def test_loader_part_runs_without_albumentations(tmp_path: Path, monkeypatch) -> None:
    real = gpu_check.importlib.util.find_spec
    monkeypatch.setattr(
        gpu_check.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "albumentations" else real(name, *a),
    )
    out = tmp_path / "gc"
    argv = [
        "--device",
        "cpu",
        "--quick",
        "--out",
        str(out),
        "--parts",
        "loader",
        "--workers",
        "0",
        *ROOMY,
    ]
    assert gpu_check.main(argv) == 0
    loader = _parts(out)["loader"]
    assert loader["status"] == "ok" and loader["rows"][0]["status"] == "ok", loader
    assert "augment=none" in loader["notes"][0]
    config = (out / "part5_run_w0" / "config.yaml").read_text()
    assert "augment: none" in config


def test_unknown_part_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--parts", "step,warp"])


def test_an_interrupt_inside_training_keeps_the_epoch_timed_so_far(tmp_path: Path, monkeypatch):
    from medspikeformer.engine import trainer as trainer_mod

    def validate_then_signal(self, epoch):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(trainer_mod._Run, "validate", validate_then_signal)
    out = tmp_path / "gc"
    argv = ["--device", "cpu", "--quick", "--out", str(out), "--parts", "loader", *ROOMY]
    assert gpu_check.main(argv) == 130
    loader = json.loads((out / "part5_loader.json").read_text())
    assert loader["status"] == "interrupted"
    (row,) = loader["rows"]
    assert row["status"] == "interrupted" and len(row["epochs"]) == 1
    assert row["epochs"][0]["step_s"] > 0 and row["epochs"][0]["ckpt_s"] == 0
    assert trainer_mod._Run.validate is validate_then_signal  # the timers were taken off again
