"""The GPU check's CPU form (``--device cpu --quick``) end to end, so the prepared script cannot
rot before it meets a GPU; and its budget and missing-data paths. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import gpu_check


def test_quick_cpu_run_writes_every_part(tmp_path: Path) -> None:
    out = tmp_path / "gc"
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    parts = report["parts"]
    assert set(parts) == {"tests", "steps", "train"}
    # (a) the gpu-marked tests were collected and skipped (no CUDA here), none failed
    assert parts["tests"]["status"] == "ok", parts["tests"]
    assert parts["tests"]["counts"].get("skipped", 0) >= 1
    # (b) both precisions of both models timed, with FLOPs and MFU against the measured peak
    rows = parts["steps"]["rows"]
    assert {(r["model"], r["precision"]) for r in rows} == {
        (m, p) for m in ("medspikeformer", "unet") for p in ("fp32", "bf16")
    }
    for r in rows:
        assert r["status"] == "ok", r
        assert r["images_per_s"] > 0 and r["gflop"] > 0 and r["mfu"] > 0
    assert {r["teacher"] for r in rows if r["model"] == "medspikeformer"} == {"joint"}
    assert parts["steps"]["peaks"]["bf16"]["gflops"] > 0
    # (c) fixed-time training ran and was evaluated on the test split
    train = parts["train"]
    assert train["status"] == "ok", train
    assert 0.0 <= train["test"]["dsc"] <= 1.0 and train["epochs_run"] >= 1
    md = (out / "gpu_check.md").read_text()
    assert "| model | teacher | precision | step ms |" in md and "test DSC" in md


def test_spent_budget_skips_parts_but_still_reports(tmp_path: Path) -> None:
    out = tmp_path / "gc"
    argv = ["--device", "cpu", "--quick", "--out", str(out), "--budget-s", "0.5"]
    assert gpu_check.main(argv) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    assert all(p["status"] == "skipped" for p in report["parts"].values()), report["parts"]


def test_missing_kvasir_sample_is_a_skip_with_a_message(tmp_path: Path) -> None:
    out = tmp_path / "gc"
    argv = ["--device", "cpu", "--out", str(out), "--parts", "train"]
    assert gpu_check.main([*argv, "--data-root", str(tmp_path / "absent")]) == 0
    train = json.loads((out / "gpu_check.json").read_text())["parts"]["train"]
    assert train["status"] == "skipped" and "not found" in train["notes"]


def test_a_failing_part_is_recorded_and_the_rest_runs(tmp_path: Path, monkeypatch) -> None:
    def boom(args, budget):
        raise RuntimeError("CUDA error: device-side assert")

    monkeypatch.setattr(gpu_check, "part_tests", boom)
    out = tmp_path / "gc"
    argv = ["--device", "cpu", "--quick", "--out", str(out), "--parts", "tests,train"]
    assert gpu_check.main(argv) == 0
    parts = json.loads((out / "gpu_check.json").read_text())["parts"]
    assert parts["tests"]["status"] == "failed" and "device-side" in parts["tests"]["notes"]
    assert parts["train"]["status"] == "ok"
