"""Run the benchmark suite, print one table, check the performance targets, write JSON.

    python benchmarks/run_all.py --out bench-results            # what `make bench` runs
    python benchmarks/run_all.py --quick                        # a fast pass (tiny sizes)
    python benchmarks/run_all.py --suites train --models medspikeformer --train-configs 8x256

Suites: ``peak`` (matmul GFLOP/s, the MFU denominator), ``lif``, ``attention``, ``train``,
``infer``, ``data``. Timings are medians after warm-up steps; every training and inference row
runs in its own process so that its ``peak_rss_gb`` is its own. torch uses ``--threads`` threads
(default 2). Results: ``<out>/results.json`` (machine, command, rows, targets) and
``<out>/results.md`` (the same tables in Markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

# As the package does on import: huge pages for large CPU tensors, set before torch loads so that
# this process and every isolated child process get it (THP_MEM_ALLOC_ENABLE=0 to compare).
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from bench_common import (  # noqa: E402
    Row,
    add_mfu,
    machine_info,
    matmul_peak_gflops,
    run_isolated,
    set_threads,
)

SUITES = ("peak", "lif", "attention", "train", "infer", "data")
TRAIN_MODELS = ("medspikeformer", "medspikeformer+joint", "ssa", "sdt", "qk", "ann", "unet")
INFER_VARIANTS = ("eager", "lif-compiled", "fused+lif-compiled", "compiled", "fused+compiled")


# ---------------------------------------------------------------------------------------------
# targets of issue 14 (2 cores, torch CPU, default settings)

TARGETS: list[dict[str, Any]] = [
    {"label": "train b2 256² student: MFU", "row": ("train", "medspikeformer", 2, 256), "key": "mfu", "min": 0.5},
    {"label": "train b2 256² joint: peak RSS", "row": ("train", "medspikeformer+joint", 2, 256), "key": "peak_rss_gb", "max": 6.0},
    {"label": "train b2 256² student: peak RSS", "row": ("train", "medspikeformer", 2, 256), "key": "peak_rss_gb", "max": 6.0},
    {"label": "train b8 128² joint: peak RSS", "row": ("train", "medspikeformer+joint", 8, 128), "key": "peak_rss_gb", "max": 6.0},
    {"label": "train b8 128² student: peak RSS", "row": ("train", "medspikeformer", 8, 128), "key": "peak_rss_gb", "max": 6.0},
    {"label": "train b8 256² joint (paper recipe): peak RSS", "row": ("train", "medspikeformer+joint", 8, 256), "key": "peak_rss_gb", "max": 8.0},
    {"label": "train b8 256² student: peak RSS", "row": ("train", "medspikeformer", 8, 256), "key": "peak_rss_gb", "max": 8.0},
]  # fmt: skip

# The authors' code is not part of this project. Issue 14 timed it side by side with the version
# of this project at BASELINE_COMMIT on a machine of this kind; a run with ``--baseline`` (a
# checkout of that commit) times that version beside this one, so ours / authors is read as
# (ours / baseline, this run) × (baseline / authors, issue 14's run).
BASELINE_COMMIT = "32003e0"
AUTHORS: dict[tuple[str, str, int, int], dict[str, float]] = {
    ("train", "medspikeformer+joint", 2, 256): {"authors_s": 23.8, "authors_gb": 11.6, "baseline_s": 18.0, "target": 0.4},
    ("train", "medspikeformer", 2, 256): {"authors_s": 23.8, "authors_gb": 11.6, "baseline_s": 12.7, "target": 0.3},
    ("train", "medspikeformer+joint", 8, 128): {"authors_s": 26.4, "authors_gb": 11.9, "baseline_s": 15.7, "target": 0.35},
    ("train", "medspikeformer", 8, 128): {"authors_s": 26.4, "authors_gb": 11.9, "baseline_s": 12.5, "target": None},
    ("infer", "medspikeformer", 1, 256): {"authors_s": 3.39, "authors_gb": 1.68, "baseline_s": 1.65, "target": 0.25},
}  # fmt: skip
DEFAULT_INFER_VARIANT = "lif-compiled+fused"  # what predict / evaluate run (optimize_for_inference)
BASELINE_INFER_VARIANT = "lif-compiled"  # what the baseline's predict ran (a kvasir-config model)


def row_key(row: Row) -> tuple[str, str, int, int] | None:
    """``(suite, model[+teacher], batch, size)`` of a train row or of the default inference row."""
    p = row.get("params", {})
    if row.get("suite") == "train" and _default_arch(p):
        label = p.get("model", "") + (
            "" if p.get("teacher", "none") == "none" else "+" + p["teacher"]
        )
        return ("train", label, p.get("batch"), p.get("size"))
    if row.get("suite") == "infer" and p.get("variant") == DEFAULT_INFER_VARIANT:
        return ("infer", p.get("model", ""), p.get("batch"), p.get("size"))
    return None  # fmt: skip


def baseline_kwargs(module: str, kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The case the baseline runs beside ``kwargs`` (its own defaults), or ``None`` for none."""
    if module == "bench_train":
        # No FLOP count: the baseline's bench counts before it times, and a counted step run
        # first slows the timed ones (bench_train); its FLOPs are ours anyway.
        return {**kwargs, "count": False}
    if module == "bench_infer" and kwargs.get("fuse") and not kwargs.get("compile"):
        if kwargs.get("channels_last") or not kwargs.get("overrides", {}).get("compile_neurons"):
            return None
        return {**kwargs, "fuse": False}  # the baseline's predict did not fold BN
    return None


def side_by_side(rows: list[Row]) -> list[dict[str, Any]]:
    """One entry per workload of issue 14's table that has a baseline time in this run."""
    out = []
    for row in rows:
        key = row_key(row)
        base = row.get("baseline") or {}
        if key not in AUTHORS or row.get("status") != "ok" or not base.get("time_s"):
            continue
        ref = AUTHORS[key]
        vs_base = row["time_s"] / base["time_s"]
        vs_authors = vs_base * ref["baseline_s"] / ref["authors_s"]
        out.append(
            {
                "workload": row["name"],
                "ours_s": row["time_s"],
                "baseline_s": base["time_s"],
                "ours_gb": row.get("peak_rss_gb"),
                "baseline_gb": base.get("peak_rss_gb"),
                "vs_baseline": round(vs_base, 3),
                "baseline_vs_authors": round(ref["baseline_s"] / ref["authors_s"], 3),
                "vs_authors": round(vs_authors, 3),
                "target": ref["target"],
                "met": None if ref["target"] is None else vs_authors <= ref["target"],
            }
        )
    return out


PERF_ONLY_OVERRIDES = {"checkpoint_attention", "compile_neurons"}


def _default_arch(params: dict[str, Any]) -> bool:
    """True when the overrides change only speed/memory options, not the architecture."""
    return set(params.get("overrides") or {}) <= PERF_ONLY_OVERRIDES


def find_row(rows: list[Row], suite: str, a: Any, b: Any, size: int) -> Row | None:
    """The ok row of a target selector (train: model[+teacher], batch, size; infer: model,
    variant, size)."""
    for row in rows:
        p = row.get("params", {})
        if row.get("suite") != suite or row.get("status") != "ok" or p.get("size") != size:
            continue
        if not _default_arch(p):
            continue
        if suite == "train" and row_key(row) == ("train", a, b, size):
            return row
        if (
            suite == "infer"
            and p.get("model") == a
            and p.get("variant") == b
            and p.get("batch") == 1
        ):
            return row
    return None


def check_targets(rows: list[Row]) -> list[dict[str, Any]]:
    """One entry per target: measured value (or ``None``), limit and whether it is met."""
    out = []
    for target in TARGETS:
        row = find_row(rows, *target["row"])
        value = None if row is None else row.get(target["key"])
        if "max" in target:
            limit, met = f"≤ {target['max']}", None if value is None else value <= target["max"]
        else:
            limit, met = f"≥ {target['min']}", None if value is None else value >= target["min"]
        out.append({"target": target["label"], "limit": limit, "measured": value, "met": met})
    for entry in side_by_side(rows):
        if entry["target"] is not None:
            out.append(
                {
                    "target": f"{entry['workload']}: ours / authors (via the baseline)",
                    "limit": f"≤ {entry['target']}",
                    "measured": entry["vs_authors"],
                    "met": entry["met"],
                }
            )
    # attention block ≤ 1.5× a 1×1 conv of the same width at 256²
    by = {
        (r["params"].get("kind"), r["params"].get("side")): r
        for r in rows
        if r.get("suite") == "attention" and r.get("status") == "ok"
    }
    for kind in ("block", "block-lif-compiled", "block-compiled", "core"):
        if (kind, 256) in by and ("conv1x1", 256) in by:
            ratio = by[(kind, 256)]["time_s"] / by[("conv1x1", 256)]["time_s"]
            out.append(
                {
                    "target": f"attention {kind} / conv1x1 at 256²",
                    "limit": "≤ 1.5",
                    "measured": round(ratio, 2),
                    "met": ratio <= 1.5,
                }
            )
    lif = {
        r["params"].get("variant"): r
        for r in rows
        if r.get("suite") == "lif" and r.get("status") == "ok"
    }
    if "eager" in lif and "compiled" in lif:
        speedup = lif["eager"]["time_s"] / lif["compiled"]["time_s"]
        out.append(
            {
                "target": "LIF compiled speed-up over eager",
                "limit": "≥ 3",
                "measured": round(speedup, 2),
                "met": speedup >= 3,
            }
        )
    for row in rows:
        if row.get("suite") == "train":
            has = row.get("mfu") is not None or row.get("status") != "ok"
            if not has:
                out.append(
                    {
                        "target": f"MFU stated: {row['name']}",
                        "limit": "stated",
                        "measured": None,
                        "met": False,
                    }
                )
    return out  # fmt: skip


# ---------------------------------------------------------------------------------------------
# plans


def parse_train_configs(text: str) -> list[tuple[int, int]]:
    """``"2x256,8x128"`` → ``[(2, 256), (8, 128)]`` (batch × size)."""
    configs = []
    for item in text.split(","):
        batch, size = item.lower().split("x")
        configs.append((int(batch), int(size)))
    return configs


def build_plan(args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any], bool]]:
    """Every case to run: ``(module, function, kwargs, isolated)``."""
    quick = args.quick
    dev = args.device
    plan: list[tuple[str, str, dict[str, Any], bool]] = []
    suites = args.suites
    rep: dict[str, Any] = {"repeat": args.repeat} if args.repeat else {}
    if args.warmup is not None:
        rep["warmup"] = args.warmup
    if "lif" in suites:
        shape = [4, 2, 16, 32, 32] if quick else [4, 2, 32, 128, 128]
        for variant in ("eager", "compiled", "spikingjelly"):
            plan.append(
                (
                    "bench_lif",
                    "bench_lif",
                    {"variant": variant, "shape": shape, "device": dev, **rep},
                    False,
                )
            )
    if "attention" in suites:
        sides = args.attention_sides or ([16, 32] if quick else [64, 128, 256])
        dim = 16 if quick else 32
        for side in sides:
            for kind in ("block", "block-lif-compiled", "conv1x1", "core", "quadratic"):
                plan.append(
                    (
                        "bench_attention",
                        "bench_attention",
                        {"kind": kind, "side": side, "dim": dim, "device": dev, **rep},
                        False,
                    )
                )
            if args.compile_attention:
                plan.append(
                    (
                        "bench_attention",
                        "bench_attention",
                        {"kind": "block-compiled", "side": side, "dim": dim, "device": dev, **rep},
                        False,
                    )
                )
    if "train" in suites:
        configs = parse_train_configs(
            args.train_configs or ("2x64" if quick else "2x256,8x256,8x128")
        )
        overrides: dict[str, Any] = dict(args.set)
        if quick:
            overrides.setdefault("base_channels", 8)
        for batch, size in configs:
            for entry in args.models:
                model, _, teacher = entry.partition("+")
                kwargs = {
                    "model": model,
                    "batch": batch,
                    "size": size,
                    "teacher": teacher or "none",
                    "device": dev,
                    "compile": args.compile_train,
                    "channels_last": args.channels_last,
                    "overrides": overrides
                    if model != "unet"
                    else {k: v for k, v in overrides.items() if k == "in_channels"},
                    **rep,
                }
                plan.append(("bench_train", "bench_train", kwargs, True))
    if "infer" in suites:
        size = 64 if quick else 256
        overrides = {"base_channels": 8} if quick else {}
        for model in args.infer_models:
            variants = args.infer_variants if model == "medspikeformer" else ("eager",)
            for variant in variants:
                tags = set(variant.split("+"))
                extra = {"compile_neurons": True} if "lif-compiled" in tags else {}
                kwargs = {
                    "model": model,
                    "size": size,
                    "compile": "compiled" in tags,
                    "fuse": "fused" in tags,
                    "channels_last": "NHWC" in tags,
                    "device": dev,
                    "overrides": {**overrides, **extra} if model != "unet" else {},
                    **rep,
                }
                plan.append(("bench_infer", "bench_infer", kwargs, True))
    return plan  # fmt: skip


def run_data_suite(args: argparse.Namespace) -> list[Row]:
    """Rows of the data helper's ``bench_data`` (images/s of the loading pipeline)."""
    try:
        import bench_data
    except Exception as exc:
        return [{"suite": "data", "name": "data pipeline", "params": {}, "time_s": None, "status": "skipped", "notes": f"bench_data unavailable: {exc}"}]  # fmt: skip
    fn = getattr(bench_data, "run", None) or getattr(bench_data, "bench_data", None)
    if fn is None:
        return [{"suite": "data", "name": "data pipeline", "params": {}, "time_s": None, "status": "skipped", "notes": "bench_data has no run()"}]  # fmt: skip
    try:
        rows = fn(quick=args.quick)
    except Exception as exc:
        return [{"suite": "data", "name": "data pipeline", "params": {}, "time_s": None, "status": "failed", "notes": f"{type(exc).__name__}: {exc}"}]  # fmt: skip
    rows = rows if isinstance(rows, list) else [rows]
    for row in rows:
        row.setdefault("suite", "data")
        row.setdefault("params", {})
        row.setdefault("status", "ok")
        row.setdefault("time_s", None)
    return rows


# ---------------------------------------------------------------------------------------------
# output


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


ROW_COLUMNS = (
    "suite",
    "name",
    "time (s)",
    "best (s)",
    "CPU (s)",
    "peak RSS (GB)",
    "GFLOP",
    "GFLOP/s",
    "MFU",
    "MFU (CPU)",
    "status / notes",
)


def row_cells(row: Row) -> list[str]:
    notes = row.get("status", "ok")
    if row.get("notes"):
        notes = f"{notes}: {row['notes']}"
    extra = []
    for key in ("images_per_s", "compile_s", "firing_rate"):
        if row.get(key) is not None:
            extra.append(f"{key}={_fmt(row[key])}")
    if extra:
        notes = f"{notes} ({', '.join(extra)})"
    mfu, mfu_cpu = row.get("mfu"), row.get("mfu_cpu")
    return [
        row.get("suite", ""),
        row.get("name", ""),
        _fmt(row.get("time_s")),
        _fmt(row.get("min_s")),
        _fmt(row.get("cpu_s")),
        _fmt(row.get("peak_rss_gb")),
        _fmt(row.get("gflop")),
        _fmt(row.get("gflops")),
        "–" if mfu is None else f"{100 * mfu:.1f}%",
        "–" if mfu_cpu is None else f"{100 * mfu_cpu:.1f}%",
        notes,
    ]


SBS_COLUMNS = (
    "workload",
    "ours s",
    "baseline s",
    "ours / baseline",
    "baseline / authors (issue 14)",
    "ours / authors",
    "target",
    "ours GB",
    "baseline GB",
)


def sbs_cells(e: dict[str, Any]) -> list[str]:
    return [
        e["workload"],
        _fmt(e["ours_s"]),
        _fmt(e["baseline_s"]),
        _fmt(e["vs_baseline"]),
        _fmt(e["baseline_vs_authors"]),
        _fmt(e["vs_authors"]),
        "–" if e["target"] is None else f"≤ {e['target']} ({_fmt(e['met'])})",
        _fmt(e["ours_gb"]),
        _fmt(e["baseline_gb"]),
    ]


def print_tables(rows: list[Row], targets: list[dict[str, Any]], info: dict[str, Any]) -> None:
    """One rich table of all rows, then the targets."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    title = f"{info['cpu']} · {info['cores']} cores · torch {info['torch']} · {info['threads']} threads · {info['device']} · {info['date_utc']} · load {info.get('loadavg_1min')}→{info.get('loadavg_end')}"
    table = Table(title=title)
    for col in ROW_COLUMNS:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row_cells(row))
    console.print(table)
    sbs = side_by_side(rows)
    if sbs:
        st = Table(
            title=f"side by side with the baseline (issue 14's baseline/authors ratios; MFU peak {info.get('matmul_peak_gflops')} GFLOP/s)"
        )
        for col in SBS_COLUMNS:
            st.add_column(col)
        for e in sbs:
            st.add_row(*sbs_cells(e))
        console.print(st)
    tt = Table(title="targets (issue 14)")
    for col in ("target", "limit", "measured", "met"):
        tt.add_column(col)
    for t in targets:
        tt.add_row(t["target"], t["limit"], _fmt(t["measured"]), _fmt(t["met"]))
    console.print(tt)  # fmt: skip


def markdown(
    rows: list[Row], targets: list[dict[str, Any]], info: dict[str, Any], command: str
) -> str:
    """The results as Markdown tables (machine, command and date on top)."""
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores, {info.get('memory_gb', '?')} GB, torch {info['torch']}, "
        f"{info['threads']} threads, device {info['device']}. Date: {info['date_utc']}. "
        f"Load average (1 min) {info.get('loadavg_1min')} at start, {info.get('loadavg_end')} at end. Command: `{command}`.",
        "",
        "| " + " | ".join(ROW_COLUMNS) + " |",
        "|" + "---|" * len(ROW_COLUMNS),
    ]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row_cells(r)) + " |" for r in rows]
    sbs = side_by_side(rows)
    if sbs:
        lines += [
            "",
            f"Side by side with the baseline (`--baseline`), matmul peak {info.get('matmul_peak_gflops')} GFLOP/s:",
            "",
            "| " + " | ".join(SBS_COLUMNS) + " |",
            "|" + "---|" * len(SBS_COLUMNS),
        ]
        lines += ["| " + " | ".join(sbs_cells(e)) + " |" for e in sbs]
    lines += ["", "| target | limit | measured | met |", "|---|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['limit']} | {_fmt(t['measured'])} | {_fmt(t['met'])} |"
        for t in targets
    ]
    return "\n".join(lines) + "\n"  # fmt: skip


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out", default="bench-results", help="output folder (results.json, results.md)"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes and models: a fast smoke pass")
    p.add_argument("--suites", default=",".join(SUITES), help=f"comma list of {', '.join(SUITES)}")
    p.add_argument(
        "--models",
        default=",".join(TRAIN_MODELS),
        help="train suite: models; '+joint' / '+frozen' adds the teacher",
    )
    p.add_argument(
        "--train-configs",
        default=None,
        help="train suite: BATCHxSIZE list (default 2x256,8x256,8x128)",
    )
    p.add_argument(
        "--infer-models", default="medspikeformer,ssa,sdt,qk,ann,unet", help="infer suite: models"
    )
    p.add_argument(
        "--infer-variants",
        default=",".join(INFER_VARIANTS),
        help="infer suite: variants for medspikeformer, each a +-joined set of lif-compiled, "
        "fused, compiled, NHWC",
    )
    p.add_argument(
        "--attention-sides", default=None, help="attention suite: image sides (N = side²)"
    )
    p.add_argument(
        "--compile-attention",
        action="store_true",
        help="also time the torch.compiled attention block",
    )
    p.add_argument(
        "--compile-train", action="store_true", help="torch.compile the models in the train suite"
    )
    p.add_argument(
        "--channels-last",
        action="store_true",
        help="train suite: models and inputs in channels_last (NHWC) memory format",
    )
    p.add_argument(
        "--no-checkpoint-attention",
        action="store_true",
        help="train suite: keep attention activations instead of recomputing them",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model override (repeatable; JSON values)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (CUDA: bf16 autocast)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument(
        "--repeat", type=int, default=None, help="timed repetitions per case (default 3-7)"
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up calls (default 2)")
    p.add_argument(
        "--mem-limit-gb",
        type=float,
        default=None,
        help="abort a case whose RSS passes this (default 85%% of RAM)",
    )
    p.add_argument("--timeout", type=float, default=1200, help="seconds per isolated case")
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help=f"a checkout of an earlier version (issue 14: {BASELINE_COMMIT}) to time beside "
        "every train row and the default inference row, in the same run",
    )
    args = p.parse_args(argv)  # fmt: skip
    args.suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        p.error(f"unknown suite(s) {unknown}; choose from {', '.join(SUITES)}")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.infer_models = [m.strip() for m in args.infer_models.split(",") if m.strip()]
    args.infer_variants = [v.strip() for v in args.infer_variants.split(",") if v.strip()]
    if args.attention_sides:
        args.attention_sides = [int(s) for s in args.attention_sides.split(",")]
    overrides = []
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides.append((key, json.loads(value)))
        except json.JSONDecodeError:
            overrides.append((key, value))
    if args.no_checkpoint_attention:
        overrides.append(("checkpoint_attention", False))
    args.set = overrides
    if args.mem_limit_gb is None:
        info = machine_info()
        args.mem_limit_gb = round(0.85 * info.get("memory_gb", 16.0), 1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda but no CUDA device is available", file=sys.stderr)
            return 2
    info = machine_info(args.device)
    command = "python benchmarks/run_all.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    peak = matmul_peak_gflops(1024 if args.quick else 2048, device=args.device)
    rows.append(peak)
    plan = build_plan(args)
    from rich.progress import Progress

    t_start = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("benchmarks", total=len(plan) + ("data" in args.suites))
        for module, func, kwargs, isolated in plan:
            progress.update(
                task,
                description=f"{module} {kwargs.get('model', kwargs.get('kind', kwargs.get('variant', '')))}",
            )
            if isolated:
                limits = {
                    "timeout_s": args.timeout,
                    "mem_limit_gb": args.mem_limit_gb,
                    "threads": args.threads,
                }
                row = run_isolated(module, func, kwargs, **limits)
                base_kwargs = baseline_kwargs(module, kwargs) if args.baseline else None
                if base_kwargs is not None:  # right after ours: the same state of the machine
                    base = run_isolated(module, func, base_kwargs, repo=args.baseline, **limits)
                    row["baseline"] = {
                        k: base.get(k)
                        for k in ("time_s", "min_s", "cpu_s", "peak_rss_gb", "status", "notes")
                    }
                    row["baseline"]["repo"] = str(args.baseline)
            else:
                import importlib

                row = getattr(importlib.import_module(module), func)(**kwargs)
            rows.append(add_mfu(row, peak))
            progress.advance(task)
            _write(out, rows, info, command, partial=True)
        if "data" in args.suites:
            rows.extend(run_data_suite(args))
            progress.advance(task)  # fmt: skip
    if plan:  # the peak again at the end: MFU against the faster reading (a peak is a maximum)
        end_peak = matmul_peak_gflops(1024 if args.quick else 2048, device=args.device)
        end_peak["name"] += " (end of run)"
        rows.append(end_peak)
        if (end_peak.get("gflops") or 0) > (peak.get("gflops") or 0):
            peak = end_peak
        for row in rows:
            add_mfu(row, peak)
        info["matmul_peak_gflops"] = peak.get("gflops")
    info["baseline"] = str(args.baseline) if args.baseline else None
    targets = check_targets(rows)
    info["wall_s"] = round(time.perf_counter() - t_start, 1)
    info["loadavg_end"] = round(os.getloadavg()[0], 2)
    print_tables(rows, targets, info)
    _write(out, rows, info, command, targets=targets)
    print(f"results: {out / 'results.json'} and {out / 'results.md'} ({info['wall_s']} s)")
    return 0


def _write(
    out: Path,
    rows: list[Row],
    info: dict[str, Any],
    command: str,
    targets: list | None = None,
    partial: bool = False,
) -> None:
    targets = targets if targets is not None else check_targets(rows)
    payload = {
        "machine": info,
        "command": command,
        "partial": partial,
        "rows": rows,
        "targets": targets,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    (out / "results.md").write_text(markdown(rows, targets, info, command))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
