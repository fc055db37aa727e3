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
import sys
from pathlib import Path
from typing import Any

from medspikeformer.config.flags import (
    add_option_flags,
    given_flags,
    overrides_from_args,
    resume_flags,
)


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
    # --epochs, --model, --precision …: one flag per declared option (medspikeformer.config)
    add_option_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medspikeformer.engine.config import load_config, validate_config
    from medspikeformer.engine.run_dir import run_dir_of
    from medspikeformer.engine.trainer import train
    from medspikeformer.errors import ConfigError

    overrides = overrides_from_args(args)
    if args.resume:
        allowed = resume_flags()
        given = [s.option.flag for s in given_flags(args) if s.option.flag not in allowed]
        if args.config or args.recipe or args.sets or given:
            bad = ", ".join(
                given
                + (["--config"] if args.config else [])
                + (["--recipe"] if args.recipe else [])
                + (["--set"] if args.sets else [])
            )
            raise ConfigError(
                f"--resume {args.resume}: the run's config.yaml is used; only "
                f"{', '.join(allowed)} may change (got {bad})"
            )
        config = load_config(Path(args.resume) / "config.yaml", overrides=overrides)
    else:
        config = load_config(args.config, recipe=args.recipe, overrides=overrides, sets=args.sets)
    validate_config(config)
    if args.resume_force and not args.resume:
        raise ConfigError("--resume-force needs --resume RUN_DIR")
    try:
        result = train(config, resume=args.resume, resume_force=args.resume_force)
    except (KeyboardInterrupt, SystemExit) as exc:
        _say_how_to_continue(exc, Path(args.resume) if args.resume else run_dir_of(config))
        raise
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


def _say_how_to_continue(exc: BaseException, run_dir: Path) -> None:
    """After Ctrl-C or SIGTERM: one line saying how to continue (the epochs already finished are
    in ``last.pt``)."""
    from medspikeformer.cli import SIGTERM_EXIT

    if isinstance(exc, SystemExit) and exc.code != SIGTERM_EXIT:
        return
    if (run_dir / "last.pt").is_file():
        print(
            f"stopped: {run_dir} keeps its finished epochs; continue with "
            f"`medspikeformer train --resume {run_dir}`",
            file=sys.stderr,
        )
