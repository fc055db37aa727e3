"""The 16-image fitting check: how fast each neuron / head / initialisation fits 16 images.

    python benchmarks/fit_check.py --data-root ../shared/data/kvasir-seg --out exp/fit16
    python benchmarks/fit_check.py ... --configs lif-spike,ilif1-spike --seeds 41 --jobs 2

The first 16 training ids of the Kvasir paper split are train, validation and test alike
(``overfit16.json``, written into ``--out``); 64², width 8, four units, T as the configuration
says, Adam 2e-3 with a cosine schedule, no augmentation, no teacher, batch 8 (2 steps per epoch). Each configuration × seed trains in its own process on one
thread (``--jobs`` at once); configurations with ``+twin`` start from the ANN twin with their
head trained by the ``ann`` / ``ann-real`` configuration of the same seed (those run first). Reported per run: validation DSC
and the training segmentation loss every 10 epochs, the final DSC, the median seconds per
training step, and the trained model's firing rate, SOPs and energy on one 64² input
(``medspikeformer profile``'s numbers; an integer spike of value v counts v events). Results:
``OUT/fit_check.{json,md}``, rewritten after every run; each run's row is also kept in its folder
(``fit_row.json``), so a later invocation reuses finished runs and resumes an interrupted one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from bench_common import Row, machine_info, run_isolated  # noqa: E402
from medspikeformer.outputs import atomic_write_text  # noqa: E402

LIF_RECIPE = {"neuron": "lif", "head_gain": 4.0, "v_threshold": 0.5}  # the CPU recipe's LIF
ILIF = {"neuron": "ilif", "levels": 4, "v_threshold": 1.0, "head_gain": 1.0}
CONFIGS: dict[str, dict[str, Any]] = {
    "ann": {"name": "ann"},
    "ann-real": {"name": "ann", "head": "real"},
    "lif-spike": {**LIF_RECIPE, "head": "spike", "timesteps": 2},
    "lif-real": {**LIF_RECIPE, "head": "real", "head_gain": 1.0, "timesteps": 2},
    "ilif1-spike": {**ILIF, "head": "spike", "timesteps": 1},
    "ilif1-real": {**ILIF, "head": "real", "timesteps": 1},
    "ilif2-spike": {**ILIF, "head": "spike", "timesteps": 2},
    "ilif2-real": {**ILIF, "head": "real", "timesteps": 2},
    # toward the 0.90 target: a twin with the recipe's head gain, more levels, finer threshold
    "ann-g4": {"name": "ann", "head_gain": 4.0},
    "ilif2-spike-g4": {**ILIF, "head": "spike", "timesteps": 2, "head_gain": 4.0, "twin": "ann-g4"},
    "ilif2-spike-d8": {**ILIF, "head": "spike", "timesteps": 2, "levels": 8},
    "ilif2-spike-d8v05": {**ILIF, "head": "spike", "timesteps": 2, "levels": 8, "v_threshold": 0.5},
    "ilif4-spike": {**ILIF, "head": "spike", "timesteps": 4},
}
"""Model options of each configuration (``name`` defaults to ``medspikeformer``); ``NAME+twin``
is the same configuration started from the ANN twin with its head (``ann`` or ``ann-real``, or the
configuration its ``twin`` key names)."""


def twin_of(config: str) -> str:
    """The ANN configuration whose run starts ``config`` (``…+twin``): the twin has its head."""
    spec = CONFIGS[config.removesuffix("+twin")]
    if "twin" in spec:
        return spec["twin"]
    return "ann-real" if spec.get("head", "spike") == "real" else "ann"


EVERY = 10  # epochs between recorded points


def overfit_split(data_root: str, out: Path, count: int = 16) -> Path:
    """Write ``overfit16.json``: the first ``count`` training ids of the Kvasir paper split as
    train, val and test (``allow_overlap``: on purpose)."""
    from medspikeformer.data import build_dataset

    ds = build_dataset("kvasir", root=data_root, split="train", size=64)
    ids = sorted(s.id for s in ds.samples)[:count]
    path = out / "overfit16.json"
    out.mkdir(parents=True, exist_ok=True)
    split = {"allow_overlap": True, "train": ids, "val": ids, "test": ids}
    path.write_text(json.dumps(split, indent=1))
    return path


def fit_run(
    config: str,
    seed: int,
    epochs: int,
    data_root: str,
    split: str,
    out: str,
    init_from: str | None = None,
) -> Row:
    """Train one configuration on the 16 images; the row of :mod:`fit_check`'s table."""
    import torch

    from bench_common import make_row
    from medspikeformer.analysis.profile import profile_model
    from medspikeformer.engine import Callback, train
    from medspikeformer.engine.checkpoint import load_checkpoint
    from medspikeformer.models import create_model

    class StepTimes(Callback):
        def __init__(self) -> None:
            self.step_times: list[float] = []
            self._t = time.perf_counter()

        def on_step_end(self, index: int, terms: Any) -> None:
            now = time.perf_counter()
            self.step_times.append(now - self._t)
            self._t = now

        def on_epoch_end(self, epoch: int, row: Any) -> None:
            self._t = time.perf_counter()

    # n_kv 256: the ANN twin's pooled keys as in the CPU recipe (the spiking models ignore it)
    spec = {k: v for k, v in CONFIGS[config.removesuffix("+twin")].items() if k != "twin"}
    model = {"name": "medspikeformer", "base_channels": 8, "n_kv": 256, **spec}
    cfg = {
        "out": out,
        "model": model,
        "data": {"dataset": "kvasir", "root": data_root, "size": 64, "split_spec": split,
                 "augment": "none", "num_workers": 0},
        "optim": {"lr": 2e-3},
        "scheduler": {"name": "cosine"},
        "teacher": {"mode": "none"},
        "train": {"epochs": epochs, "batch_size": 8, "seed": seed, "progress": False,
                  "init_from": init_from},
    }  # fmt: skip
    probe = StepTimes()
    t0 = time.perf_counter()
    # a run interrupted earlier continues (a finished one has nothing left to do)
    resume = out if (Path(out) / "last.pt").is_file() else None
    result = train(cfg, resume=resume, log=lambda _line: None, callbacks=[probe])
    wall = time.perf_counter() - t0
    points, epoch_times = read_points(Path(out) / "metrics.csv")
    steps = statistics.median(probe.step_times) if probe.step_times else None
    if steps is None and epoch_times:  # all epochs done before: per step from the epoch times
        steps = statistics.median(epoch_times) / STEPS_PER_EPOCH
    ckpt = load_checkpoint(Path(out) / "last.pt")
    net = create_model(ckpt["model_name"], **ckpt["model_config"])
    net.load_state_dict(ckpt["state_dict"])
    torch.manual_seed(seed)
    prof = profile_model(net.eval(), size=64)
    final = points[-1] if points else {}
    row = make_row(
        "fit",
        f"{config} seed {seed}",
        {"config": config, "seed": seed, "epochs": epochs},
        time_s=steps,
        wall_s=round(wall, 1),
        final_dsc=final.get("dsc"),
        best_dsc=result["best_metrics"].get("val_dsc"),
        points=points,
        firing_rate=prof.mean_firing_rate,
        sops_m=prof.sops / 1e6,
        energy_uj=prof.energy_pj / 1e6,
        run_dir=out,
    )
    (Path(out) / ROW_NAME).write_text(json.dumps(row, indent=1))
    return row


ROW_NAME = "fit_row.json"
"""A finished run's row, in its folder: a later invocation reuses it instead of training again."""
STEPS_PER_EPOCH = 2  # 16 images, batch 8


def read_points(metrics_csv: Path) -> tuple[list[dict[str, float]], list[float]]:
    """The recorded points (epoch 1 and every :data:`EVERY`-th: validation DSC, training
    segmentation loss) and every epoch's time, from a run's ``metrics.csv``."""
    import csv

    with open(metrics_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    points = [
        {"epoch": int(r["epoch"]), "dsc": float(r["val_dsc"]),
         "seg": float(r["train_bce"]) + float(r["train_dice"])}
        for r in rows if int(r["epoch"]) % EVERY == 0 or int(r["epoch"]) == 1
    ]  # fmt: skip
    return points, [float(r["time_s"]) for r in rows]


def _mean(values: list[float]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    return f"{statistics.mean(vals):.3f} [{min(vals):.2f}–{max(vals):.2f}]"


def table(rows: list[Row], configs: list[str]) -> list[str]:
    """Markdown: per configuration, the mean [min–max] over seeds."""
    head = "| configuration | final DSC | DSC @10 | @20 | @30 | @40 | @50 | seg loss (final) | firing rate | SOPs (M) | energy (µJ) | s / step |"
    lines = [head, "|---|" + "---:|" * 11]
    for name in configs:
        got = [
            r for r in rows if r.get("params", {}).get("config") == name and r.get("status") == "ok"
        ]
        if not got:
            failed = [r.get("notes", "") for r in rows if r.get("params", {}).get("config") == name]
            lines.append(f"| {name} | failed: {failed[:1]} |" + " |" * 10)
            continue

        def at(epoch: int, runs: list[Row] = got) -> list[float]:
            return [p["dsc"] for r in runs for p in r["points"] if p["epoch"] == epoch]

        last = [r["points"][-1] for r in got]
        cells = [
            _mean([r["final_dsc"] for r in got]),
            *(_mean(at(e)) for e in (10, 20, 30, 40, 50)),
            _mean([p["seg"] for p in last]),
            _mean([r["firing_rate"] for r in got]),
            _mean([r["sops_m"] for r in got]),
            _mean([r["energy_uj"] for r in got]),
            _mean([r["time_s"] for r in got]),
        ]
        lines.append(f"| {name} (n={len(got)}) | " + " | ".join(cells) + " |")
    return lines


def merge_earlier(path: Path, rows: list[Row]) -> list[Row]:
    """``rows`` plus the rows of an earlier run into the same folder that this one did not redo
    (same configuration and seed), so a table can be completed in several invocations."""
    if not path.is_file():
        return rows
    redone = {(r["params"]["config"], r["params"]["seed"]) for r in rows if "params" in r}
    earlier = json.loads(path.read_text()).get("rows", [])
    kept = [r for r in earlier if (r["params"]["config"], r["params"]["seed"]) not in redone]
    return kept + rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True, help="the Kvasir-SEG folder")
    p.add_argument("--out", default="exp/fit16")
    spiking = [c for c in CONFIGS if not c.startswith("ann")]
    p.add_argument("--configs", default=",".join([*CONFIGS, *(f"{c}+twin" for c in spiking)]))
    p.add_argument("--seeds", default="41,42,43")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    args = p.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for c in configs:
        if c.removesuffix("+twin") not in CONFIGS or (c.startswith("ann") and c.endswith("+twin")):
            print(
                f"error: unknown configuration {c!r}; known: {', '.join(CONFIGS)} (+twin)",
                file=sys.stderr,
            )
            return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    split = str(overfit_split(args.data_root, out).resolve())
    rows: list[Row] = []

    def run(config: str, seed: int) -> Row:
        init = None
        if config.endswith("+twin"):
            init = str((out / f"{twin_of(config)}-s{seed}" / "last.pt").resolve())
        kwargs = {"config": config, "seed": seed, "epochs": args.epochs, "data_root": args.data_root,
                  "split": split, "out": str((out / f"{config}-s{seed}").resolve()), "init_from": init}  # fmt: skip
        done = Path(kwargs["out"]) / ROW_NAME
        if done.is_file():
            row = json.loads(done.read_text())
        else:
            row = run_isolated("fit_check", "fit_run", kwargs, timeout_s=7200, threads=1)
        print(f"{config:<18} seed {seed}: {row.get('status')} final DSC {row.get('final_dsc')} "
              f"{row.get('notes', '')}", flush=True)  # fmt: skip
        with lock:
            rows.append(row)
            write_tables(rows)  # after every run: an interrupted check keeps what it measured
        return row

    lock = threading.Lock()
    command = " ".join(sys.argv[1:] if argv is None else argv)

    def write_tables(rows: list[Row]) -> None:
        every = merge_earlier(out / "fit_check.json", rows)
        done = {r["params"]["config"] for r in every if "params" in r}
        shown = [c for c in [*CONFIGS, *(f"{c}+twin" for c in CONFIGS)] if c in done]
        info = machine_info()
        md = [f"Machine: {info['cpu']}, torch {info['torch']}, {info['date_utc']}; one thread per "
              f"run, {args.jobs} at once. Command: `python benchmarks/fit_check.py {command}`.",
              "", *table(every, shown)]  # fmt: skip
        atomic_write_text(out / "fit_check.md", "\n".join(md) + "\n")
        atomic_write_text(
            out / "fit_check.json", json.dumps({"machine": info, "rows": every}, indent=1)
        )

    first = [(c, s) for c in configs if not c.endswith("+twin") for s in seeds]
    then = [(c, s) for c in configs if c.endswith("+twin") for s in seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda cs: run(*cs), first))
        list(pool.map(lambda cs: run(*cs), then))
    print((out / "fit_check.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
