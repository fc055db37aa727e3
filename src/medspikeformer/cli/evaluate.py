"""``medspikeformer evaluate CKPT``: the paper's metrics on a dataset split.

Writes ``per_image.csv``, ``summary.json``, ``summary.md`` and ``qualitative.png`` (first images:
image, ground truth, prediction, errors) into ``--out`` and prints the metrics table.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

from medspikeformer.cli.options import (
    add_ensemble_options,
    add_exact_option,
    add_loader_option_argument,
    output_path,
    parse_loader_options,
)
from medspikeformer.config.flags import add_option_flag

HELP = "evaluate a checkpoint on a dataset split (mIoU, DSC, Acc, Spe, Sen, per-image Dice/IoU)"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("evaluate", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=Path, help="checkpoint file (best.pt / last.pt)")
    p.add_argument("--dataset", help="dataset name (default: the one the checkpoint trained on)")
    p.add_argument("--data-root", help="dataset folder (default: the training run's)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument(
        "--split-spec",
        help="split spec or split file (default: the run's split.json when the checkpoint lives "
        "in a run directory, else the training config's)",
    )
    p.add_argument("--threshold", type=float, default=None, help="probability threshold (0.5)")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (id, h, v)")
    p.add_argument(
        "--out",
        type=output_path,
        help="output folder (default: CKPT_DIR/eval-STEM-SPLIT, -training added for --resolution training)",
    )
    p.add_argument("--size", type=int, nargs="+", metavar=("H", "W"), help="override the size")
    p.add_argument("--in-channels", type=int, choices=[1, 3], help="override the input channels")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--cache-dir", help="decoded-array cache folder ('off' to disable)")
    add_loader_option_argument(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    add_option_flag(
        p,
        "train.precision",  # the training option's choices
        default="auto",
        help="autocast of the forward passes: auto = bf16 on CUDA, fp32 on CPU",
    )
    add_exact_option(p)
    add_ensemble_options(p)
    p.add_argument(
        "--resolution",
        default="native",
        choices=["native", "training"],
        help="native: each prediction resized back to its image's own size and scored against "
        "the mask at that size, 3-D data per case (default); training: the masks at the size "
        "the model sees",
    )
    p.add_argument("--grid", type=int, default=6, help="images in qualitative.png (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def resolve_split_spec(ctx: Any, dataset: str, given: str | None) -> tuple[Any, str]:
    """The split spec to use and a description of where it came from."""
    import json

    if given:
        return given, "--split-spec"
    split_file = ctx.split_file
    if split_file is not None:
        try:
            saved = json.loads(split_file.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("dataset") in (None, dataset):
            return str(split_file), str(split_file)
    spec = ctx.config.data.split_spec
    if spec is not None:
        return spec, "training config"
    return "paper", "default"


#: The files ``evaluate`` writes into ``--out``.
OUTPUT_FILES = ("per_image.csv", "summary.json", "summary.md")
GRID_FILE = "qualitative.png"
#: A folder holding one of these is a training run: its files are never replaced by evaluate.
RUN_MARKERS = ("last.pt", "best.pt", "metrics.csv", "split.json")


def check_outputs(out: Path, checkpoint: Path, *, grid: bool) -> None:
    """``OutputError`` before anything runs when ``--out`` is a training run's folder (its
    ``summary.json`` is the training's and would be replaced) or an output would replace the
    checkpoint."""
    from medspikeformer.outputs import OutputError, OutputNames

    present = [m for m in RUN_MARKERS if (out / m).exists()]
    if present:
        raise OutputError(
            f"{out}: holds a training run ({', '.join(present)}); evaluate would replace its "
            "summary.json — choose another --out (default: CKPT_DIR/eval-STEM-SPLIT)"
        )
    names = OutputNames([checkpoint])
    for name in (*OUTPUT_FILES, *((GRID_FILE,) if grid else ())):
        names.check_not_input(out / name, source="the evaluation")


def default_out(checkpoint: Path, split: str, resolution: str) -> Path:
    """``CKPT_DIR/eval-STEM-SPLIT``; a training-size score gets its own folder
    (``…-training``), so that it never replaces the native-size reports beside it."""
    suffix = "" if resolution == "native" else f"-{resolution}"
    return checkpoint.parent / f"eval-{checkpoint.stem}-{split}{suffix}"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from medspikeformer.data.selection import evaluation_note
    from medspikeformer.engine.datasets import dataset_from_config
    from medspikeformer.engine.task import class_names
    from medspikeformer.errors import ConfigError
    from medspikeformer.inference import evaluate, resolve_device
    from medspikeformer.inference.ensemble import load_ensemble_context
    from medspikeformer.inference.evaluate import (
        BOUNDARY_METRICS,
        GLOBAL_METRICS,
        MEAN_METRICS,
        METRIC_LABELS,
        RESOLUTION_LABELS,
        boundary_label,
    )
    from medspikeformer.viz import qualitative_grid

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise ConfigError(
            f"--threshold {args.threshold}: must lie strictly between 0 and 1 (a probability)"
        )
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.num_workers < 0:
        raise ConfigError(f"--num-workers {args.num_workers}: must be >= 0")
    if args.grid < 0:
        raise ConfigError(f"--grid {args.grid}: the number of pictured images must be >= 0")
    console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
    device = resolve_device(args.device)
    members = [args.checkpoint, *args.ensemble]
    ctx = load_ensemble_context(members, device=device, size=args.size, optimize=not args.exact)
    out = args.out or default_out(args.checkpoint, args.split, args.resolution)
    from medspikeformer.engine.run_dir import ensure_writable_dir

    ensure_writable_dir(out)  # a bad --out fails before the evaluation, on one line
    check_outputs(out, args.checkpoint, grid=args.grid > 0)
    cfg = copy.deepcopy(ctx.config)
    saved_dataset = cfg.data.dataset if ctx.has_config else None
    dataset = args.dataset or saved_dataset
    if not dataset:
        raise ConfigError(f"{args.checkpoint}: no dataset recorded; pass --dataset NAME")
    same_dataset = dataset == saved_dataset
    root = args.data_root or (cfg.data.root if same_dataset else None)
    in_channels = args.in_channels or ctx.in_channels
    if in_channels != ctx.in_channels:
        raise ConfigError(
            f"--in-channels {in_channels} does not match the model's {ctx.in_channels} channels"
        )
    spec, spec_source = resolve_split_spec(ctx, dataset, args.split_spec)
    saved_data = (ctx.checkpoint.get("train_config") or {}).get("data")
    old_run = isinstance(saved_data, dict) and saved_data and "validation" not in saved_data
    if old_run and cfg.data.folds is None:
        cfg.data.validation = "test"  # trained before the option: val was the test part
    threshold = args.threshold
    if threshold is None:
        threshold = cfg.train.threshold
    # The saved data section, re-pointed at what the command line asks for.
    cfg.data.dataset, cfg.data.root, cfg.data.split_spec = dataset, root, spec
    if not same_dataset:
        cfg.data.options = {}  # loader options of another dataset do not apply
        cfg.data.folds = cfg.data.fold = None  # nor the training data's folds
    # a folder with other names (mask suffix, subfolders…): the loader options train takes
    cfg.data.options = {**cfg.data.options, **parse_loader_options(args.option, "evaluate")}
    # Where the cache writes is the command line's choice, never the checkpoint's: a file from
    # someone else must not pick a folder on this machine to write into.
    cfg.data.cache_dir = args.cache_dir
    ds = dataset_from_config(cfg, args.split, size=ctx.train_size, in_channels=in_channels)
    # which images selected the checkpoint, as the split it was trained on records it
    protocol = (ds.split_info.get("validation") or {}).get("protocol")
    info = {
        **ctx.info(),
        "dataset": dataset,
        "data_root": str(root) if root else None,
        "split": args.split,
        "split_spec": str(spec),
        "split_from": spec_source,
        "selection": protocol,
        "device": str(device),
        "precision": args.precision,
        **({"ensemble": [str(m) for m in members]} if args.ensemble else {}),
    }
    result = evaluate(
        ctx.model,
        ds,
        threshold=threshold,
        tta_flip=args.tta,
        device=device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        keep_samples=max(0, args.grid),
        progress=not args.no_progress,
        info=info,
        precision=args.precision,
        class_names=class_names(ctx.model, cfg),
        resolution=args.resolution,
        largest_component=args.largest_component,
    )
    paths = result.save(out)
    if result.samples:
        images, masks, probs, ids = zip(*result.samples)
        paths["grid"] = qualitative_grid(
            images,
            masks,
            probs,
            Path(out) / "qualitative.png",
            ids=ids,
            threshold=threshold,
            class_names=class_names(ctx.model, cfg),
            multilabel=ctx.model.multilabel,
        )
    console.print(f"{dataset}/{args.split}: {len(ds)} images, split from {spec_source}")
    console.print(f"scored at {RESOLUTION_LABELS[result.resolution]}")
    note = evaluation_note(protocol, args.split) if same_dataset and protocol else None
    if note:
        console.print(note)
    table = Table()
    table.add_column(f"metric ({result.resolution})")
    table.add_column("value", justify="right")
    for key in (*GLOBAL_METRICS, *MEAN_METRICS):
        label = METRIC_LABELS[key].replace("per image", f"per {result.per}")
        table.add_row(label, f"{result.metrics[key]:.4f}")
    for key in BOUNDARY_METRICS:
        if result.metrics.get(key) is not None:
            label = boundary_label(key, result.boundary_unit, result.per)
            table.add_row(label, f"{result.metrics[key]:.4f}")
    for name in result.class_names:
        table.add_row(f"DSC {name}", f"{result.metrics[f'dsc_{name}']:.4f}")
    Console().print(table)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
    return 0
