"""``medspikeformer explain CKPT IMAGE --out heatmaps.png``: per-stage attention heatmaps like the
paper's Fig. 5 — the SDSA output magnitude of the spiking model beside the ANN teacher's SA output
(when a teacher is available: the run's ``last.pt`` or ``--teacher``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medspikeformer.cli.options import output_path

HELP = "draw per-stage attention heatmaps (SDSA vs the ANN teacher's SA)"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("explain", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=Path, help="checkpoint of the spiking model")
    p.add_argument("image", type=Path, help="one image (jpg, png, tif, bmp)")
    p.add_argument(
        "--out",
        type=output_path,
        default=None,
        help="PNG to write (default: CKPT_DIR/explain-<image stem>.png, beside the checkpoint "
        "as evaluate's folder)",
    )
    p.add_argument(
        "--teacher",
        type=Path,
        help="teacher checkpoint (the ANN twin, or a run's last.pt); default: last.pt beside CKPT",
    )
    p.add_argument("--no-teacher", action="store_true", help="draw the spiking model only")
    p.add_argument("--size", type=int, nargs="+", metavar=("H", "W"), help="override input size")
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


DISPLAY_MAX_SIDE = 512


def display_image(image: Any) -> Any:
    """The image the heatmaps are drawn over: the original, downscaled to ≤ 512 px on its long side."""
    import cv2

    h, w = image.shape[:2]
    scale = DISPLAY_MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from medspikeformer.data import read_image
    from medspikeformer.data.probe import probe_shape
    from medspikeformer.errors import ConfigError
    from medspikeformer.inference import resolve_device
    from medspikeformer.inference.context import load_context, load_teacher, policy_warnings
    from medspikeformer.inference.explain import attention_maps, prepare_image
    from medspikeformer.outputs import OutputNames
    from medspikeformer.viz import attention_figure

    if not 0.0 <= args.alpha <= 1.0:  # also false for NaN
        raise ConfigError(f"--alpha {args.alpha}: the heatmap opacity must lie in 0…1")
    console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
    out = args.out or args.checkpoint.parent / f"explain-{args.image.stem}.png"
    inputs = [args.checkpoint, args.image, *([args.teacher] if args.teacher else [])]
    OutputNames(inputs).check_not_input(out, source=f"explain of {args.image}")
    device = resolve_device(args.device)
    ctx = load_context(args.checkpoint, device=device, size=args.size)
    # explain shows one whole image at the policy's size (a sliding-trained model too)
    for message in policy_warnings(
        ctx.preprocessing, mode=None, size=ctx.train_size if args.size else None
    ):
        console.print(f"warning: {args.checkpoint}: {message}")
    probe_shape(args.image)  # DataError naming the file for a missing/unreadable image
    image = read_image(args.image)
    x, _ = prepare_image(image, ctx.train_size, ctx.in_channels)
    shown = display_image(image)
    student = attention_maps(ctx.model, x.to(device))
    teacher_maps = None
    if not args.no_teacher:
        teacher, source = load_teacher(ctx, args.teacher, device=device)
        if teacher is None:
            console.print(f"no teacher drawn: {source}")
        else:
            teacher_maps = attention_maps(teacher, x.to(device))
            console.print(f"teacher: {source}")
    name = ctx.checkpoint.get("model_name", "model")
    attention_figure(
        shown,
        student,
        out,
        teacher_maps=teacher_maps,
        student_label=f"{name} (SNN)" if ctx.model.is_spiking else name,
        title=f"{args.image.name} — mean |attention output| over channels",
        alpha=args.alpha,
    )
    console.print(f"heatmaps: {out}")
    return 0
