"""``medspikeformer demo``: train, evaluate and draw on the synthetic set in a few minutes on a CPU.

What ``make demo`` runs. It trains the default model (MedSpikeFormer with its jointly trained ANN
teacher) with the shipped ``synthetic`` config + ``demo`` recipe (small images, narrow
network, T = 2), evaluates the best checkpoint on the synthetic *test* split, and writes under
``--out`` (default ``runs/demo``)::

    config.yaml, split.json, versions.json, metrics.csv, best.pt, last.pt   (the training run)
    test/summary.json, test/summary.md, test/per_image.csv                  (test-split evaluation)
    training_curves.png, qualitative.png                                     (pictures)
"""

from __future__ import annotations

import argparse
from typing import Any

from medspikeformer.cli.options import output_name


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train + evaluate + pictures on the synthetic set (a few minutes on a CPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", type=output_name, default="runs/demo", help="output directory (default runs/demo)"
    )
    p.add_argument("--epochs", type=int, help="override the demo recipe's epochs")
    p.add_argument("--size", type=int, help="override the demo recipe's image size")
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other config override (see docs/training.md)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="delete an earlier demo run in --out first (otherwise it is resumed/reused)",
    )
    p.set_defaults(func=run)


def run_demo(
    out: str = "runs/demo",
    *,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
    fresh: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Train on the synthetic set, evaluate on its test split and draw; returns a summary dict."""
    import shutil
    import time
    from pathlib import Path

    from medspikeformer.data import build_dataset
    from medspikeformer.engine.checkpoint import load_model
    from medspikeformer.engine.config import load_config, validate_config
    from medspikeformer.engine.trainer import train
    from medspikeformer.errors import ConfigError
    from medspikeformer.inference.evaluate import evaluate

    out_dir = Path(out)
    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    config = load_config(
        "synthetic",
        recipe="demo",
        overrides={**(overrides or {}), "out": str(out_dir)},
        sets=sets or [],
    )
    validate_config(config)
    t0 = time.perf_counter()
    resume = None
    if (out_dir / "last.pt").is_file() and (out_dir / "config.yaml").is_file():
        if load_config(out_dir / "config.yaml") != config:
            raise ConfigError(
                f"{out_dir}: holds a demo run with another configuration; "
                "pass --fresh to replace it or choose another --out"
            )
        resume = out_dir
    if resume is not None:
        log(f"continuing the earlier demo run in {out_dir} (use --fresh to start over)")
        result = train(config, resume=resume, log=log)
    else:
        result = train(config, log=log)
    train_s = time.perf_counter() - t0

    model, _ckpt = load_model(out_dir / "best.pt")
    d = config.data
    test_set = build_dataset(
        d.dataset,
        root=d.root,
        split="test",
        size=d.size,
        split_spec=d.split_spec,
        augment="none",
        in_channels=int(model.in_channels),
        seed=config.train.seed,
        **d.options,
    )
    ev = evaluate(
        model,
        test_set,
        threshold=config.train.threshold,
        device=config.train.device,
        batch_size=config.train.batch_size,
        keep_samples=6,
        info={"checkpoint": str(out_dir / "best.pt"), "dataset": d.dataset, "split": "test"},
    )
    files = ev.save(out_dir / "test")
    pictures = _pictures(out_dir, ev)
    total_s = time.perf_counter() - t0
    m = ev.metrics
    log(
        f"demo test split ({m['num_images']} images): mIoU {m['miou']:.4f}  DSC {m['dsc']:.4f}  "
        f"Acc {m['acc']:.4f}  Spe {m['spe']:.4f}  Sen {m['sen']:.4f}  "
        f"(train {train_s / 60:.1f} min, total {total_s / 60:.1f} min)"
    )
    log(
        f"written under {out_dir}/: metrics.csv, best.pt, test/{files['json'].name}, "
        + ", ".join(p.name for p in pictures)
    )
    return {
        "run_dir": str(out_dir),
        "test_metrics": dict(m),
        "train": result,
        "train_seconds": train_s,
        "total_seconds": total_s,
        "pictures": [str(p) for p in pictures],
    }


def _pictures(out_dir: Any, ev: Any) -> list[Any]:
    """The training curves (drawn by the trainer) and a qualitative grid (``medspikeformer.viz``)."""
    from medspikeformer.viz import qualitative_grid

    written = [out_dir / "training_curves.png"]
    if ev.samples:
        images = [s[0] for s in ev.samples]
        gts = [s[1] for s in ev.samples]
        preds = [s[2] for s in ev.samples]
        ids = [s[3] for s in ev.samples]
        written.append(
            qualitative_grid(
                images, gts, preds, out_dir / "qualitative.png", ids=ids, threshold=ev.threshold
            )
        )
    return written


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.epochs is not None:
        overrides.setdefault("train", {})["epochs"] = args.epochs
    if args.size is not None:
        overrides.setdefault("data", {})["size"] = args.size
    if args.device is not None:
        overrides.setdefault("train", {})["device"] = args.device
    run_demo(args.out, overrides=overrides, sets=args.sets, fresh=args.fresh)
    return 0
