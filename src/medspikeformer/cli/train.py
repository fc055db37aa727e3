"""``medspikeformer train``: train a model from a YAML config, a recipe and command-line overrides.

Examples::

    medspikeformer train --config kvasir --data-root DIR --out runs/kvasir
    medspikeformer train --config kvasir --recipe cpu-quick --data-root DIR --out runs/quick
    medspikeformer train --config synthetic --model ssa --teacher none --set model.timesteps=2
    medspikeformer train --resume runs/kvasir                  # continue after the last epoch
    medspikeformer train --config busi --data-root DIR --init-from runs/kvasir/best.pt   # fine-tune
    medspikeformer train --config kvasir --data-root DIR --init-from twin   # ANN twin first, then from it
    torchrun --nproc_per_node 2 -m medspikeformer train --config kvasir ...   # data-parallel
"""

from __future__ import annotations

import argparse
from typing import Any

from medspikeformer.cli.options import output_name

#: flag → (nested config key, type) for the common overrides.
COMMON_FLAGS: dict[str, tuple[str, type]] = {
    "epochs": ("train.epochs", int),
    "batch_size": ("train.batch_size", int),
    "seed": ("train.seed", int),
    "device": ("train.device", str),
    "precision": ("train.precision", str),
    "lr": ("optim.lr", float),
    "model": ("model.name", str),
    "dataset": ("data.dataset", str),
    "data_root": ("data.root", str),
    "size": ("data.size", int),
    "split": ("data.split_spec", str),
    "num_workers": ("data.num_workers", int),
    "teacher": ("teacher.mode", str),
    "init_from": ("train.init_from", str),
    "out": ("out", str),
}

#: What may change when resuming (everything else comes from RUN_DIR/config.yaml).
RESUMABLE = {"epochs", "device", "num_workers", "precision"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model (dataset configs, recipes, --set overrides, --resume)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="dataset config: a shipped name (e.g. kvasir) or a YAML path")
    p.add_argument(
        "--recipe",
        help="recipe merged over the config: a shipped name (e.g. cpu-quick) or a YAML path",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config value, e.g. --set optim.lr=3e-4 --set teacher.align.stages=[2,3]",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    p.add_argument(
        "--resume-force",
        action="store_true",
        help="resume although RUN_DIR/config.yaml was edited or the data changed (the saved "
        "split.json is kept)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--model", help="registered model name (medspikeformer list-models)")
    p.add_argument("--dataset")
    p.add_argument("--data-root")
    p.add_argument("--size", type=int, help="training image size (square)")
    p.add_argument("--split", help="split spec: paper, official, 70/10/20 or a JSON file")
    p.add_argument("--num-workers", type=int)
    p.add_argument("--teacher", help="auto | joint | none | PATH of a frozen ANN-twin checkpoint")
    p.add_argument(
        "--init-from",
        metavar="CKPT|twin",
        help="fine-tune: start from the weights of CKPT (same model and options; a run's last.pt "
        "also gives a joint teacher its weights; the model's ANN twin's checkpoint starts a twin "
        "initialisation); fresh optimiser, schedule and epochs. 'twin': train the ANN twin first "
        "into OUT/twin/ and start from it (the cpu recipe does)",
    )
    p.add_argument(
        "--logger",
        dest="loggers",
        action="append",
        default=None,
        metavar="NAME",
        help="also log to NAME besides metrics.csv (tensorboard: pip install "
        "'medspikeformer[tensorboard]'); repeatable",
    )
    p.add_argument("--out", type=output_name, help="run directory (default runs/<dataset>-<model>)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast: auto = bf16 on CUDA, fp32 on CPU; fp16 adds a gradient scaler",
    )
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument(
        "--deterministic", action="store_true", default=None, help="deterministic algorithms only"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Nested override dict from the common flags that were given."""
    out: dict[str, Any] = {}
    for flag, (key, _) in COMMON_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    for flag in ("compile", "deterministic"):
        if getattr(args, flag, None):
            out.setdefault("train", {})[flag] = True
    if getattr(args, "no_progress", False):
        out.setdefault("train", {})["progress"] = False
    if getattr(args, "loggers", None):
        out.setdefault("train", {})["loggers"] = list(args.loggers)
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medspikeformer.engine.config import load_config, validate_config
    from medspikeformer.engine.trainer import train
    from medspikeformer.errors import ConfigError

    overrides = overrides_from_args(args)
    if args.resume:
        given = [
            f"--{f.replace('_', '-')}"
            for f in COMMON_FLAGS
            if getattr(args, f, None) is not None and f not in RESUMABLE
        ]
        if args.config or args.recipe or args.sets or given:
            bad = ", ".join(
                given
                + (["--config"] if args.config else [])
                + (["--recipe"] if args.recipe else [])
                + (["--set"] if args.sets else [])
            )
            raise ConfigError(
                f"--resume {args.resume}: the run's config.yaml is used; only --epochs, --device, "
                f"--precision and --num-workers may change (got {bad})"
            )
        config = load_config(Path(args.resume) / "config.yaml", overrides=overrides)
    else:
        config = load_config(args.config, recipe=args.recipe, overrides=overrides, sets=args.sets)
    validate_config(config)
    if args.resume_force and not args.resume:
        raise ConfigError("--resume-force needs --resume RUN_DIR")
    result = train(config, resume=args.resume, resume_force=args.resume_force)
    if not result.get("is_main", True):
        return 0
    best = result["best_metrics"]
    print(
        f"done: best val mIoU {best.get('val_miou', float('nan')):.4f} "
        f"DSC {best.get('val_dsc', float('nan')):.4f} at epoch {result['best_epoch']}; "
        f"run directory {result['run_dir']} (best.pt, last.pt, metrics.csv, summary.json, "
        "training_curves.png)"
    )
    return 0
