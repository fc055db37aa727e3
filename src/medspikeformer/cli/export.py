"""``medspikeformer export CKPT --onnx model.onnx [--size H W] [--safetensors out.safetensors]``:
ONNX of the spike-driven inference graph (T timesteps unrolled, no teacher, no stage heads),
checked with onnx.checker and compared with PyTorch in onnxruntime; and/or the weights as
safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medspikeformer.cli.options import output_path

HELP = "export a checkpoint to ONNX (inference graph) and/or safetensors"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("export", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=Path, help="checkpoint file")
    p.add_argument("--onnx", type=output_path, help="ONNX file to write")
    p.add_argument(
        "--safetensors", type=output_path, help="safetensors file to write (weights only)"
    )
    p.add_argument(
        "--size",
        type=int,
        nargs="+",
        metavar=("H", "W"),
        help="fixed input size of the ONNX graph (default: the training size)",
    )
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime comparison")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from medspikeformer.errors import ConfigError
    from medspikeformer.inference.context import load_context

    console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
    if args.onnx is None and args.safetensors is None:
        raise ConfigError("nothing to export: give --onnx FILE and/or --safetensors FILE")
    from medspikeformer.outputs import OutputNames

    # Both outputs are checked before anything is built: never over the checkpoint (or a hard
    # link to it), never the two formats into one file.
    names = OutputNames([args.checkpoint])
    for out in (args.safetensors, args.onnx):
        if out is not None:
            names.check_not_input(out, source=f"export of {args.checkpoint}")
    if args.onnx is not None and args.onnx == args.safetensors:
        raise ConfigError(f"{args.onnx}: --onnx and --safetensors name the same file")
    ctx = load_context(args.checkpoint, device="cpu", size=args.size)
    if args.safetensors is not None:
        from medspikeformer.engine.checkpoint import export_safetensors

        path = export_safetensors(args.checkpoint, args.safetensors)
        console.print(f"safetensors: {path}")
    if args.onnx is not None:
        from medspikeformer.inference.export import export_onnx

        described: dict[str, object] = {"threshold": ctx.config.train.threshold}
        if ctx.preprocessing is not None:
            policy = ctx.preprocessing.to_dict()
            described |= {f"preprocessing_{k}": policy[k] for k in ("mode", "scale", "resize")}
        report = export_onnx(
            ctx.model,
            args.onnx,
            size=ctx.train_size,
            opset=args.opset,
            verify=not args.no_verify,
            metadata=described,
        )
        h, w = ctx.train_size
        console.print(
            f"onnx: {report.path} (input image [batch, {ctx.in_channels}, {h}, {w}], opset "
            f"{report.opset}, {report.nodes} nodes, T={ctx.model.timesteps} unrolled)"
        )
        if report.max_abs_error is not None:
            console.print(
                f"onnxruntime (optimisation ≤ extended) vs PyTorch: max |Δlogit| = "
                f"{report.max_abs_error:.3g}, {100 * report.mismatch_fraction:.3f}% of logits "
                "differ by > 1e-4"
            )
            console.print(
                f"onnxruntime (all optimisations) vs PyTorch: max |Δlogit| = "
                f"{report.full_opt_max_abs_error:.3g}, "
                f"{100 * report.full_opt_mask_disagreement:.3f}% of mask pixels differ "
                "(spikes at threshold ties; see docs/inference.md)"
            )
    return 0
