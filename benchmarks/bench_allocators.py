"""Allocators side by side in one run: training-step time and peak RSS, and RSS over a long run.

    python benchmarks/bench_allocators.py --out bench-results/allocators
    python benchmarks/bench_allocators.py --cache-repo build/cache-96d1cda    # + the former cache
    make bench-allocators                                                      # both, as measured

Variants (each case in a fresh process, :func:`bench_common.run_isolated`):

* ``system``: glibc's malloc, PyTorch's default CPU allocator;
* ``mimalloc`` / ``jemalloc`` / ``tcmalloc``: preloaded with ``LD_PRELOAD`` and their settings
  (:mod:`medspikeformer.allocator`, the variables the command line would use);
* ``cache``: the project's former C++ tensor cache, from a checkout that still has it
  (``--cache-repo``; its ``src/`` is put first on ``PYTHONPATH``, its cache installed).

Workloads: the training steps of ``make bench-baseline`` (``--train-configs``), the CPU recipe's
step (64², width 8, T = 2, joint teacher with 256 pooled keys, batch 8; configs/recipes/cpu.yaml)
and :func:`rss_run` — ``--epochs`` epochs of a small real training run (the engine's own loop:
validation, checkpoints, metrics) with the resident set read after every epoch, for
MedSpikeFormer with its joint teacher and for the U-Net. The table gives each step's median time
and its ratio to the cache's (the variant to beat) and to the system allocator's, and for the
long runs the RSS after the first epoch, after warm-up, at the end and its slope.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as the command line runs

from bench_common import (  # noqa: E402
    Row,
    current_rss_gb,
    machine_info,
    matmul_peak_gflops,
    run_isolated,
)
from medspikeformer.engine.step import Callback  # noqa: E402

VARIANTS = ("system", "cache", "mimalloc", "jemalloc", "tcmalloc")
CPU_RECIPE_MODEL = {"base_channels": 8, "timesteps": 2, "head_gain": 4.0, "v_threshold": 0.5,
                    "n_kv": 256}  # fmt: skip
WARMUP_EPOCHS = 10  # the slope is taken after these (the first epochs fill caches and pools)


def variant_env(name: str, cache_repo: Path | None) -> tuple[dict[str, str], str | None]:
    """Environment for a variant's child process and a note when it cannot run here."""
    from medspikeformer import allocator

    env = {allocator.ENV_CHOICE: "system", "MEDSPIKEFORMER_CPU_CACHE": "0"}
    if name == "system":
        return env, None
    if name == "cache":
        if cache_repo is None:
            return env, "no --cache-repo (a checkout that has the former cache)"
        env["MEDSPIKEFORMER_CPU_CACHE"] = "1"
        env["PYTHONPATH"] = str(Path(cache_repo).resolve() / "src")
        return env, None
    lib = allocator.library_path(name)
    if lib is None:
        return env, f"{name} not installed"
    return {**env, **allocator.preload_env(name, lib, environ={})}, None


class RssProbe(Callback):
    """Engine callback: resident set (GB) and wall time after every epoch."""

    def __init__(self) -> None:
        self.rss: list[float] = []
        self.times: list[float] = []
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, row: Any) -> None:
        self.rss.append(round(current_rss_gb(), 4))
        self.times.append(round(time.perf_counter() - self._t0, 3))


def rss_slope_mb(rss: list[float], skip: int = WARMUP_EPOCHS) -> float | None:
    """Least-squares slope of RSS (MB per epoch) over the epochs after ``skip``."""
    ys = [r * 1024 for r in rss[skip:]]
    n = len(ys)
    if n < 2:
        return None
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def rss_run(model: str = "medspikeformer", epochs: int = 100, samples: int = 48) -> Row:
    """``epochs`` epochs of the engine's loop on a synthetic set (48², width 8, three units,
    T = 2, the joint teacher for MedSpikeFormer; batch 8); RSS after every epoch."""
    import medspikeformer.engine as engine
    from bench_common import make_row

    out = Path(tempfile.mkdtemp(prefix="bench-rss-"))
    model_cfg: dict[str, Any] = {"name": model}
    if model == "medspikeformer":
        model_cfg.update(base_channels=8, num_units=3, timesteps=2)
    cfg = {
        "out": str(out),
        "model": model_cfg,
        "data": {"dataset": "synthetic", "size": 48, "split_spec": "70/10/20",
                 "augment": "strong", "num_workers": 0, "options": {"num_samples": samples}},
        "teacher": {"mode": "joint" if model == "medspikeformer" else "none"},
        "train": {"epochs": epochs, "batch_size": 8, "seed": 41, "progress": False},
    }  # fmt: skip
    probe = RssProbe()
    t0 = time.perf_counter()
    engine.train(cfg, log=lambda _line: None, callbacks=[probe])
    wall = time.perf_counter() - t0
    rss = probe.rss
    params = {"model": model, "epochs": epochs, "samples": samples}
    return make_row(
        "allocators",
        f"rss {model} {epochs} epochs",
        params,
        time_s=wall / max(1, len(rss)),
        rss_first_gb=rss[0] if rss else None,
        rss_warm_gb=rss[min(WARMUP_EPOCHS, len(rss) - 1)] if rss else None,
        rss_last_gb=rss[-1] if rss else None,
        rss_slope_mb=rss_slope_mb(rss),
        rss_gb=rss,
    )


def plan(
    train_configs: list[tuple[int, int]], epochs: int, recipe: bool = True
) -> list[tuple[str, str, dict]]:
    """``(module, function, kwargs)`` of every case, in table order."""
    cases: list[tuple[str, str, dict]] = []
    for batch, size in train_configs:
        for teacher in ("none", "joint"):
            kw = {"model": "medspikeformer", "batch": batch, "size": size, "teacher": teacher,
                  "warmup": 1, "repeat": 3, "count": False,
                  "overrides": {"compile_neurons": True}}  # fmt: skip
            cases.append(("bench_train", "bench_train", kw))
    recipe_step = {"model": "medspikeformer", "batch": 8, "size": 64, "teacher": "joint", "warmup": 2,
              "repeat": 10, "count": False, "overrides": CPU_RECIPE_MODEL}  # fmt: skip
    if recipe:
        cases.append(("bench_train", "bench_train", recipe_step))
    if epochs > 0:
        for model in ("medspikeformer", "unet"):
            cases.append(("bench_allocators", "rss_run", {"model": model, "epochs": epochs}))
    return cases


def case_label(module: str, kwargs: dict) -> str:
    if module == "bench_allocators":
        return f"RSS over {kwargs['epochs']} epochs, {kwargs['model']}"
    teacher = "+joint" if kwargs["teacher"] == "joint" else ""
    recipe = " (CPU recipe)" if kwargs["overrides"] is CPU_RECIPE_MODEL else ""
    return f"step {kwargs['model']}{teacher} b{kwargs['batch']} {kwargs['size']}²{recipe}"


def table(results: dict[str, dict[str, Row]], variants: list[str]) -> list[str]:
    """Markdown: one row per case, one column per variant (time, ratio to cache and system)."""
    lines = [
        "| case | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for label, rows in results.items():
        cells = []
        ref = {v: rows.get(v, {}).get("time_s") for v in ("cache", "system")}
        for v in variants:
            row = rows.get(v, {})
            if row.get("status") != "ok":
                cells.append(
                    row.get("status", "–") + (f" ({row['notes']})" if row.get("notes") else "")
                )
                continue
            if "rss_gb" in row:
                slope = row["rss_slope_mb"]
                slope_text = "–" if slope is None else f"{slope:+.1f}"
                cells.append(
                    f"{row['rss_first_gb']:.2f} → {row['rss_warm_gb']:.2f} → "
                    f"{row['rss_last_gb']:.2f} GB ({slope_text} MB/epoch), "
                    f"{row['time_s']:.2f} s/epoch"
                )
                continue
            t = row["time_s"]
            ratios = [f"{t / ref[k]:.2f}× {k}" for k in ("cache", "system") if ref[k] and k != v]
            cells.append(
                f"{t:.2f} s, {row.get('peak_rss_gb', float('nan')):.2f} GB"
                + (f" ({', '.join(ratios)})" if ratios else "")
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _run_case(results, args, label, variant, module, func, kwargs, env, threads) -> None:
    row = run_isolated(module, func, kwargs, timeout_s=args.timeout, threads=threads, env=env)
    results[label][variant] = row
    print(f"{label:<48} {variant:<9} {row.get('status')} time {row.get('time_s')} "
          f"rss {row.get('peak_rss_gb')} {row.get('notes', '')}", flush=True)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench-results/allocators", help="folder for results.{json,md}")
    p.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma list of " + ", ".join(VARIANTS)
    )
    p.add_argument("--train-configs", default="2x256,8x128", help="BxSIZE list of training steps")
    p.add_argument("--epochs", type=int, default=100, help="epochs of the RSS runs (0: none)")
    p.add_argument("--cache-repo", type=Path, default=None, help="a checkout with the former cache")
    p.add_argument("--no-recipe-step", action="store_true", help="leave out the CPU recipe's step")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the step cases")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per case")
    p.add_argument(
        "--rss-jobs",
        type=int,
        default=1,
        help="long RSS runs at once (one thread each; their times then share the cores)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        print(
            f"error: unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}",
            file=sys.stderr,
        )
        return 2
    configs = [tuple(int(x) for x in c.split("x")) for c in args.train_configs.split(",") if c]
    info = machine_info()
    info["command"] = "python benchmarks/bench_allocators.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    peaks = [matmul_peak_gflops()]
    results: dict[str, dict[str, Row]] = {}
    long_runs = []
    for module, func, kwargs in plan(
        configs, args.epochs, recipe=not args.no_recipe_step
    ):  # variants interleaved per case
        label = case_label(module, kwargs)
        results[label] = {}
        for v in variants:
            env, skip = variant_env(v, args.cache_repo)
            if skip:
                results[label][v] = {"status": "skipped", "notes": skip}
            elif func == "rss_run":  # one thread, as the CPU recipe runs
                long_runs.append((label, v, module, func, kwargs, env))
            else:
                _run_case(results, args, label, v, module, func, kwargs, env, args.threads)
    with ThreadPoolExecutor(max_workers=max(1, args.rss_jobs)) as pool:
        for job in long_runs:
            pool.submit(_run_case, results, args, *job, 1)
    peaks.append(matmul_peak_gflops())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = [
        f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}. "
        f"Date: {info['date_utc']}. Matmul peak {peaks[0]['gflops']:.0f} / {peaks[1]['gflops']:.0f} "
        f"GFLOP/s at start / end. Command: `{info['command']}`.",
        "",
        *table(results, variants),
    ]
    (out / "results.md").write_text("\n".join(md) + "\n")
    (out / "results.json").write_text(
        json.dumps({"machine": info, "peaks": peaks, "results": results}, indent=1)
    )
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
