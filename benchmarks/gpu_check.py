"""The prepared GPU check: one unattended run that answers "does it train on a GPU, how fast".

Parts, each with its own time budget inside one overall budget (default 480 s), each wrapped so
that a failure is recorded in the JSON and the next part still runs:

a. ``tests``: the ``gpu``-marked pytest tests (skipped with a reason on a CPU machine);
b. ``steps``: one training step of every registered model at the paper recipe (batch 8, 256²,
   T = 4; the MedSpikeFormer family with its joint ANN teacher, as ``teacher.mode: auto``
   trains them) in fp32 and bf16: images/s, peak GPU memory, MFU against the device's matmul
   peak measured here in the same dtype;
c. ``train``: MedSpikeFormer on the Kvasir sample (``--data-root``) for a fixed wall-clock time
   (default 180 s, ``train.max_time_s``), then the test DSC of its best checkpoint; skipped with
   a message when the data are absent;
d. ``gpu_check.json`` and ``gpu_check.md`` in ``--out``, rewritten after every part, so a run cut
   short still leaves what it measured.

``--device cpu --quick`` runs the same code at tiny sizes in well under a minute (``make test``
runs it through tests/benchmarks/test_gpu_check.py, so the script cannot rot). Usage::

    benchmarks/gpu_check.sh                         # = make gpu-check; CUDA, results in gpu-check/
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gc
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import torch  # noqa: E402 - after the path set-up, like the other benchmark scripts

import bench_common  # noqa: E402

#: Where the Kvasir sample is looked for when --data-root is not given (beside the checkout,
#: or a shared/ folder inside it as on the device machine).
DATA_ROOTS = (
    REPO.parent / "shared" / "data" / "kvasir-seg",
    REPO / "shared" / "data" / "kvasir-seg",
)
TINY = {"base_channels": 4, "num_units": 2, "timesteps": 2, "head_dim": 4}
TINY_UNET = {"base_channels": 4, "num_levels": 2, "num_res_units": 1}


class Budget:
    """Deadlines: the whole check, and the part now running (never past the whole)."""

    def __init__(self, total_s: float) -> None:
        self.start = time.perf_counter()
        self.end = self.start + total_s
        self.part_end = self.end

    def left(self) -> float:
        return min(self.end, self.part_end) - time.perf_counter()

    def begin(self, seconds: float) -> float:
        """Start a part of at most ``seconds`` (cut to what the whole has left)."""
        self.part_end = min(self.end, time.perf_counter() + seconds)
        return self.left()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


# --------------------------------------------------------------------------------------- (a)


def part_tests(args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    """``pytest -m gpu`` in a child process, stopped at the part's deadline."""
    # The gpu-marked tests live in one file: collecting only it keeps an import error of some
    # unrelated test module (a dev dependency missing on the GPU host) from stopping the part.
    # No -n: pytest-xdist may be absent there, and these tests share one device anyway.
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider"]
    cmd.append("tests/engine/test_gpu.py")
    timeout = max(5.0, budget.left())
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "notes": f"pytest -m gpu passed its {timeout:.0f} s budget"}
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {
        k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", summary)
    }
    return {
        "status": "ok" if proc.returncode in (0, 5) and not counts.get("failed") else "failed",
        "returncode": proc.returncode,
        "summary": summary,
        "counts": counts,
        "tail": proc.stdout.strip().splitlines()[-25:],
    }


# --------------------------------------------------------------------------------------- (b)


def _peak(device: str, dtype: torch.dtype, quick: bool) -> dict[str, Any]:
    n = 256 if quick else 8192
    return bench_common.matmul_peak_gflops(n, repeat=3 if quick else 10, device=device, dtype=dtype)


def part_steps(args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    """Time one training step per (model, precision); every case in its own try."""
    import bench_train
    from medspikeformer import list_models

    device, quick = args.device, args.quick
    cuda = device.startswith("cuda")
    peaks = {
        "fp32": _peak(device, torch.float32, quick),
        "bf16": _peak(device, torch.bfloat16, quick),
    }
    batch, size = (2, 32) if quick else (8, 256)
    rows = []
    models = args.models.split(",") if args.models else list_models()
    # MedSpikeFormer first, both precisions back to back: if the budget runs out, the rows
    # that matter most (the paper model, fp32 vs bf16) are the ones already measured.
    models = sorted(models, key=lambda m: m != "medspikeformer")
    for name in models:
        for precision in args.precisions.split(","):
            teacher = "joint" if name.startswith("medspikeformer") else "none"
            if quick:
                overrides = TINY_UNET if name == "unet" else TINY
            else:
                overrides = {} if name == "unet" else {"compile_neurons": cuda}
            label = {"model": name, "precision": precision, "teacher": teacher}
            if budget.left() < (5 if quick else 20):
                rows.append({**label, "status": "skipped", "notes": "time budget spent"})
                continue
            try:
                if cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                row = bench_train.bench_train(
                    name,
                    batch=batch,
                    size=size,
                    teacher=teacher,
                    warmup=1 if quick else 3,
                    repeat=2 if quick else 5,
                    device=device,
                    overrides=overrides,
                    precision=precision,
                )
                if cuda:
                    row["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
                bench_common.add_mfu(row, peaks[precision if precision in peaks else "fp32"])
                if row.get("time_s"):
                    row["images_per_s"] = round(batch / row["time_s"], 2)
                    row["step_ms"] = round(1000 * row["time_s"], 2)
                rows.append({**label, **row})
            except Exception as exc:  # one case must not end the check
                rows.append({**label, "status": "failed", "notes": f"{type(exc).__name__}: {exc}"})
            finally:
                if cuda:
                    torch.cuda.empty_cache()
    return {
        "status": "ok" if all(r.get("status") == "ok" for r in rows) else "partial",
        "batch": batch,
        "size": size,
        "peaks": peaks,
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "rows": rows,
    }


# --------------------------------------------------------------------------------------- (c)


def _data_root(args: argparse.Namespace) -> Path | None:
    candidates = [Path(args.data_root)] if args.data_root else list(DATA_ROOTS)
    return next((p for p in candidates if p.is_dir()), None)


def part_train(args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    """Fixed-time training (``train.max_time_s``) and the test DSC of the best checkpoint."""
    from medspikeformer.engine import load_config, train
    from medspikeformer.precision import resolve_precision

    quick = args.quick
    root = None if quick and not args.data_root else _data_root(args)
    if root is None and not quick:
        tried = ", ".join(str(p) for p in ([args.data_root] if args.data_root else DATA_ROOTS))
        print(f"[gpu-check] train: Kvasir sample not found ({tried}); part skipped", flush=True)
        return {"status": "skipped", "notes": f"Kvasir sample not found at {tried}"}
    out = Path(args.out) / "kvasir-run"
    seconds = min(args.train_s, max(1.0, budget.left() - (10 if quick else 45)))
    overrides: dict[str, Any] = {
        "out": str(out),
        "train": {"max_time_s": seconds, "progress": False, "device": args.device},
    }
    if root is not None:
        config, dataset = "kvasir", "kvasir"
        overrides["data"] = {"root": str(root)}
    else:  # --quick without data: the synthetic set runs the same path
        config, dataset = "synthetic", "synthetic"
    if quick:
        overrides["model"] = dict(TINY)
        overrides["data"] = {
            **overrides.get("data", {}),
            "size": 32,
            "num_workers": 0,
            "cache_dir": False,
            **({} if root else {"options": {"num_samples": 12}, "split_spec": "50/25/25"}),
        }
        overrides["train"].update({"epochs": 2, "batch_size": 4})
    if args.train_precision:
        overrides["train"]["precision"] = args.train_precision
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cfg = load_config(config, overrides=overrides)
    lines: list[str] = []
    t0 = time.perf_counter()
    result = train(cfg, log=lambda m: (lines.append(m), print(f"[gpu-check] {m}", flush=True)))
    train_s = time.perf_counter() - t0
    evaluation = _evaluate(Path(result["best_checkpoint"]), args, dataset, root)
    return {
        "status": "ok",
        "dataset": dataset,
        "data_root": str(root) if root else None,
        "precision": resolve_precision(cfg.train.precision, args.device),
        "budget_s": round(seconds, 1),
        "wall_s": round(train_s, 1),
        "epochs_run": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "best_val": {k: result["best_metrics"].get(k) for k in ("val_miou", "val_dsc")},
        "test": evaluation,
        "log_tail": lines[-5:],
    }


def _evaluate(ckpt: Path, args: argparse.Namespace, dataset: str, root: Path | None) -> dict:
    """``medspikeformer evaluate`` on the test split of the run's own split file."""
    from medspikeformer.cli import main

    out = ckpt.parent / "eval-test"
    argv = [
        "evaluate",
        str(ckpt),
        "--split",
        "test",
        "--out",
        str(out),
        "--no-progress",
        "--grid",
        "0",
        "--device",
        args.device,
    ]
    if root is not None:
        argv += ["--data-root", str(root)]
    rc = main(argv)
    if rc != 0:
        return {"status": "failed", "returncode": rc}
    metrics = json.loads((out / "summary.json").read_text())["metrics"]
    return {"status": "ok", **{k: metrics.get(k) for k in ("dsc", "miou", "num_images")}}


# --------------------------------------------------------------------------------------- (d)


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "–"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown: machine, tests, the step table, the fixed-time training run."""
    m = report["machine"]
    lines = [
        "# GPU check",
        "",
        f"- device: {m.get('gpu', m.get('device'))}; torch {m.get('torch')}; {m.get('date_utc')}",
        f"- mode: {'quick (tiny sizes)' if report['quick'] else 'full'}; "
        f"elapsed {report.get('elapsed_s', 0):.0f} s of a {report['budget_s']:.0f} s budget",
        "",
    ]
    parts = report["parts"]
    t = parts.get("tests", {})
    lines += [
        "## (a) gpu-marked tests",
        "",
        f"{t.get('status')}: {t.get('summary', t.get('notes', ''))}",
        "",
    ]
    s = parts.get("steps", {})
    lines += ["## (b) training step", ""]
    if s.get("rows"):
        peaks = s.get("peaks", {})
        lines.append(
            "matmul peak: "
            + ", ".join(f"{k} {_fmt(v.get('gflops'), '.0f')} GFLOP/s" for k, v in peaks.items())
            + f" (batch {s.get('batch')}, {s.get('size')}²)"
        )
        lines += [
            "",
            "| model | teacher | precision | step ms | images/s | peak GPU GB | GFLOP/step | MFU | status |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in s["rows"]:
            lines.append(
                f"| {r['model']} | {r['teacher']} | {r['precision']} | {_fmt(r.get('step_ms'), '.1f')} "
                f"| {_fmt(r.get('images_per_s'), '.1f')} | {_fmt(r.get('peak_gpu_gb'), '.2f')} "
                f"| {_fmt(r.get('gflop'), '.1f')} | {_fmt(r.get('mfu'), '.3f')} "
                f"| {r.get('status')}{': ' + str(r['notes'])[:80] if r.get('notes') else ''} |"
            )
    else:
        lines.append(f"{s.get('status')}: {s.get('notes', '')}")
    c = parts.get("train", {})
    lines += ["", "## (c) fixed-time training", ""]
    if c.get("status") == "ok":
        test = c.get("test", {})
        lines.append(
            f"{c['dataset']} ({c.get('precision')}): {c['epochs_run']} epochs in {c['wall_s']:.0f} s "
            f"(budget {c['budget_s']:.0f} s); best epoch {c['best_epoch']}; "
            f"test DSC {_fmt(test.get('dsc'), '.4f')}, mIoU {_fmt(test.get('miou'), '.4f')} "
            f"on {test.get('num_images')} images"
        )
    else:
        lines.append(f"{c.get('status')}: {c.get('notes', '')}")
    return "\n".join(lines) + "\n"


def _write(report: dict[str, Any], out: Path) -> None:
    report["elapsed_s"] = round(time.perf_counter() - report.pop("_t0", time.perf_counter()), 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))


def _run_part(name: str, fn: Callable, args: argparse.Namespace, budget: Budget, s: float) -> dict:
    left = budget.begin(s)
    print(f"[gpu-check] ({name}) budget {left:.0f} s, elapsed {budget.elapsed():.0f} s", flush=True)
    if left <= 1:
        return {"status": "skipped", "notes": "overall time budget spent"}
    t0 = time.perf_counter()
    try:
        result = fn(args, budget)
    except Exception as exc:  # a part's failure is a result, not the end of the check
        result = {
            "status": "failed",
            "notes": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc().splitlines()[-12:],
        }
    result["part_s"] = round(time.perf_counter() - t0, 1)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke run)")
    p.add_argument("--out", default="gpu-check", help="output folder")
    p.add_argument("--data-root", help="Kvasir-SEG folder (default ../shared/data/kvasir-seg)")
    p.add_argument("--budget-s", type=float, default=480.0, help="whole check (s)")
    p.add_argument("--tests-s", type=float, default=70.0, help="part (a) budget (s)")
    p.add_argument("--steps-s", type=float, default=170.0, help="part (b) budget (s)")
    p.add_argument("--train-s", type=float, default=180.0, help="part (c) training time (s)")
    p.add_argument("--precisions", default="fp32,bf16", help="part (b) precisions")
    p.add_argument("--models", default="", help="part (b) models (default: all registered)")
    p.add_argument("--train-precision", default="", help="part (c) precision (default: auto)")
    p.add_argument("--parts", default="tests,steps,train", help="which parts to run")
    args = p.parse_args(argv)
    if args.quick and args.budget_s == 480.0:
        args.budget_s, args.tests_s, args.steps_s, args.train_s = 120.0, 40.0, 40.0, 15.0
        args.models = args.models or "medspikeformer,unet"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget(args.budget_s)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("[gpu-check] no CUDA device here: use --device cpu --quick", flush=True)
    report: dict[str, Any] = {
        "machine": bench_common.machine_info(args.device),
        "quick": args.quick,
        "budget_s": args.budget_s,
        "argv": sys.argv[1:] if argv is None else list(argv),
        "parts": {},
    }
    with contextlib.suppress(Exception):
        report["machine"]["cuda"] = torch.version.cuda
    parts = {"tests": (part_tests, args.tests_s), "steps": (part_steps, args.steps_s)}
    parts["train"] = (part_train, args.train_s + (20 if args.quick else 60))
    for name in args.parts.split(","):
        fn, seconds = parts[name]
        report["parts"][name] = _run_part(name, fn, args, budget, seconds)
        report["_t0"] = budget.start
        _write(report, out)
    print(markdown(report), flush=True)
    print(f"[gpu-check] wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
