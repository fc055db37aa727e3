"""Images/s of the training data pipeline (decode → resize → cache → augment → tensor).

Usage: ``python benchmarks/bench_data.py [--root ../shared/data/kvasir-seg] [--size 256]``.
Runs on the Kvasir-SEG sample by default (202 JPEG pairs, 300–1900 px wide) with the "paper"
augmentation, a fresh cache folder, and prints one table row per phase:

* first epoch (cache empty: every JPEG decoded and resized, the cache written),
* cached epochs (arrays read from the .npz cache, only augmentation + tensor conversion),
* the same through ``torch.utils.data.DataLoader`` with 0 and 2 workers (batch 8, shuffled,
  persistent workers: the first epoch includes their start-up),
* no cache at all (decode every epoch), for reference.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from medspikeformer.data import build_dataset

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kvasir-seg"


def run_direct(ds) -> tuple[float, float]:
    """(images/s, CPU ms per image) of one pass indexing the dataset directly."""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(len(ds)):
        ds[i]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return len(ds) / wall, 1000 * cpu / len(ds)


def run_loader(loader: DataLoader) -> tuple[float, float]:
    """(images/s, CPU ms per image of the main process) of one pass over a DataLoader."""
    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(batch["image"].shape[0] for batch in loader)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return n / wall, 1000 * cpu / n


def _mean(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs)


def measure(
    root: Path = DEFAULT_ROOT,
    dataset: str = "kvasir",
    size: int = 256,
    augment: str = "paper",
    batch_size: int = 8,
    epochs: int = 2,
) -> tuple[int, list[tuple[str, str, tuple[float, float]]]]:
    """(pairs, rows of (phase, access, (images/s, CPU ms/image))) for one dataset folder."""
    torch.manual_seed(0)
    rows: list[tuple[str, str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:

        def make(cache):
            return build_dataset(
                dataset, root, split="all", size=size, augment=augment, cache_dir=cache
            )

        ds = make(Path(tmp) / "a")
        rows.append(("first epoch (uncached)", "direct", run_direct(ds)))
        rows.append(("cached epoch", "direct", _mean([run_direct(ds) for _ in range(epochs)])))
        for workers in (0, 2):
            loader = DataLoader(
                make(Path(tmp) / f"w{workers}"),
                batch_size=batch_size,
                shuffle=True,
                num_workers=workers,
                persistent_workers=workers > 0,
            )
            access = f"DataLoader w={workers}"
            rows.append(("first epoch (uncached)", access, run_loader(loader)))
            rates = [run_loader(loader) for _ in range(epochs)]
            rows.append(("cached epoch", access, _mean(rates)))
            del loader
        rows.append(("no cache (decode every epoch)", "direct", run_direct(make(False))))
    return len(ds), rows


def run(quick: bool = False, root: Path = DEFAULT_ROOT, size: int = 256) -> list[dict]:
    """Rows for ``benchmarks/run_all.py``: ``time_s`` is seconds per image, notes give images/s."""
    if not root.exists():
        return [{"suite": "data", "name": "data pipeline", "params": {}, "time_s": None, "status": "skipped", "notes": f"Kvasir sample not found at {root}"}]  # fmt: skip
    n, rows = measure(root, size=size, epochs=1 if quick else 2)
    return [
        {
            "suite": "data",
            "name": f"{phase}, {access}",
            "params": {"dataset": "kvasir", "pairs": n, "size": size, "augment": "paper"},
            "time_s": 1.0 / rate,
            "status": "ok",
            "notes": f"{rate:.1f} images/s, {cpu:.1f} CPU ms/image in the main process",
        }
        for phase, access, (rate, cpu) in rows
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--dataset", default="kvasir")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--augment", default="paper")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2, help="cached epochs to average")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (collation)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.root.exists():
        raise SystemExit(f"benchmark data not found: {args.root}")
    n, rows = measure(
        args.root, args.dataset, args.size, args.augment, args.batch_size, args.epochs
    )
    print(
        f"# {args.dataset} at {args.root}: {n} pairs, {args.size}×{args.size}, "
        f"augment={args.augment}, batch {args.batch_size}"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"| {'phase':<30} | {'access':<16} | {'images/s':>9} | {'main-process CPU ms/image':>25} |"
    )
    print(f"|{'-' * 32}|{'-' * 18}|{'-' * 11}|{'-' * 27}|")
    for phase, access, (rate, cpu) in rows:
        print(f"| {phase:<30} | {access:<16} | {rate:>9.1f} | {cpu:>25.1f} |")


if __name__ == "__main__":
    main()
