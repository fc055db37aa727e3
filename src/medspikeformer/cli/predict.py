"""``medspikeformer predict CKPT IMAGES... --out DIR``: masks (PNG 0/255, original size), overlays
and NIfTI mask volumes. See docs/inference.md for the sliding-window policy and memory bound."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medspikeformer.cli.options import add_ensemble_options, add_exact_option, output_path
from medspikeformer.config.flags import add_option_flag

HELP = "predict masks for images (jpg, png, tif, bmp) and NIfTI volumes"
# Same values as medspikeformer.inference.predict (not imported here: register() stays light).
DEFAULT_MAX_PIXELS = 625_000_000
DEFAULT_BLOCK = 2048


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("predict", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=Path, help="checkpoint file")
    p.add_argument("images", nargs="+", type=Path, help="image files, NIfTI files or folders")
    p.add_argument("--out", type=output_path, required=True, help="output folder")
    p.add_argument(
        "--mode",
        choices=["sliding", "resize"],
        default=None,
        help="resize: resize to the training size and back; sliding: windows of the training "
        "size at the image's own resolution (default: what the checkpoint's preprocessing "
        "policy says training did; resize for every shipped dataset)",
    )
    p.add_argument("--threshold", type=float, default=None, help="probability threshold (0.5)")
    p.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap [0, 1)")
    p.add_argument("--sw-batch-size", type=int, default=4, help="windows per forward pass")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation")
    p.add_argument("--overlay", action="store_true", help="also write <name>_overlay.png")
    p.add_argument(
        "--recursive",
        action="store_true",
        help="read the images of a folder's subfolders too (outputs side by side in --out; "
        "repeated names get -2, -3 …)",
    )
    p.add_argument("--png-slices", action="store_true", help="NIfTI: also a PNG per slice")
    p.add_argument(
        "--ct-window",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="NIfTI intensity window for non-8-bit volumes (default: the rule training recorded "
        "— a Decathlon model's per-case percentile range, a CT model's window —, else the lung "
        "window -1000 400 HU)",
    )
    p.add_argument("--size", type=int, nargs="+", metavar=("H", "W"), help="override training size")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger images (default {DEFAULT_MAX_PIXELS:,} = 25000²)",
    )
    p.add_argument(
        "--block", type=int, default=DEFAULT_BLOCK, help="tile side for bounded memory (pixels)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda …")
    add_option_flag(
        p,
        "train.precision",  # the training option's choices
        default="auto",
        help="autocast of the forward passes: auto = bf16 on CUDA, fp32 on CPU",
    )
    add_exact_option(p)
    add_ensemble_options(p)
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="also write the float32 probability map: <name>_prob.tif ([K, H, W]) for an "
        "image, <name>_prob.nii.gz for a volume",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from medspikeformer.errors import printable
    from medspikeformer.inference import resolve_device
    from medspikeformer.inference.context import intensity_warnings, policy_warnings
    from medspikeformer.inference.ensemble import load_ensemble_context
    from medspikeformer.inference.predict import DEFAULT_CT_WINDOW, Predictor, predict_paths

    console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
    device = resolve_device(args.device)
    members = [args.checkpoint, *args.ensemble]
    ctx = load_ensemble_context(members, device=device, size=args.size, optimize=not args.exact)
    mode = args.mode or ctx.preprocessing.mode
    for message in policy_warnings(
        ctx.preprocessing, mode=args.mode, size=ctx.train_size if args.size else None
    ):
        console.print(f"warning: {args.checkpoint}: {message}")
    threshold = args.threshold
    if threshold is None:
        threshold = ctx.config.train.threshold
    # NIfTI volumes: the intensity rule training recorded, unless --ct-window says otherwise
    policy = ctx.preprocessing
    percentile = policy.percentile_range() if args.ct_window is None else None
    ct_window = tuple(args.ct_window) if args.ct_window else policy.fixed_window()
    ct_window = ct_window or DEFAULT_CT_WINDOW
    for message in intensity_warnings(policy, args.ct_window):
        console.print(f"warning: {args.checkpoint}: {message}")
    predictor = Predictor(
        model=ctx.model,
        train_size=ctx.train_size,
        in_channels=ctx.in_channels,
        mode=mode,
        threshold=threshold,
        overlap=args.overlap,
        tta_flip=args.tta,
        sw_batch_size=args.sw_batch_size,
        block=args.block,
        max_pixels=args.max_pixels,
        ct_window=ct_window,
        percentile_window=percentile,
        device=device,
        progress=not args.no_progress,
        precision=args.precision,
        largest_component=args.largest_component,
    )
    skipped: list[str] = []
    results = predict_paths(
        predictor,
        args.images,
        args.out,
        overlay=args.overlay,
        png_slices=args.png_slices,
        progress=not args.no_progress,
        recursive=args.recursive,
        skipped=skipped,
        probabilities=args.probabilities,
    )
    for line in skipped:
        console.print(printable(line))
    n_files = sum(len(v) for v in results.values())
    if args.ensemble:
        console.print(f"ensemble of {len(members)}: {', '.join(map(str, members))}")
    console.print(
        f"predicted {len(results)} input(s) ({mode}, training size "
        f"{ctx.train_size[0]}×{ctx.train_size[1]}): {n_files} file(s) in {args.out}"
    )
    return 0
