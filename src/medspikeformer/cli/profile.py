"""``medspikeformer profile``: parameters, GFLOPs, firing rates, SOPs and energy of a model.

Examples::

    medspikeformer profile medspikeformer --size 256
    medspikeformer profile medspikeformer --size 256 320 --timesteps 2 --json profile.json
    medspikeformer profile ssa --size 32 --base-channels 8 --timesteps 2
    medspikeformer profile unet --size 256 --no-layers

The input is random (standard normal) and the weights are freshly initialised, both from
``--seed``; without ``--checkpoint`` the BatchNorm statistics are first calibrated on noise (see
``calibrate_batchnorm``), so firing rates are those of an untrained but normalised network;
``--checkpoint`` profiles trained weights as they are. Conventions (FLOP counter, MACs vs FLOPs, SOPs, energy constants) are in
``docs/metrics.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

from medspikeformer.cli.options import output_name


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "profile",
        help="params, GFLOPs (total and per timestep), firing rates, SOPs and energy of a model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model", help="registered model name (e.g. medspikeformer, ssa, sdt, qk, ann, unet)"
    )
    p.add_argument(
        "--size", type=int, nargs="+", default=[256], metavar=("H", "W"), help="input H [W]"
    )
    p.add_argument("--timesteps", type=int, help="timesteps T (default: the model's)")
    p.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--base-channels", type=int, help="override the model width C")
    p.add_argument("--in-channels", type=int, help="override the input channels (1 or 3)")
    p.add_argument(
        "--neuron",
        help="spiking neuron (lif: the paper's 0/1 spikes; ilif: integer counts, each count of v "
        "counted as v synaptic events)",
    )
    p.add_argument("--levels", type=int, help="largest integer spike D of --neuron ilif (4)")
    p.add_argument(
        "--checkpoint",
        help="profile the trained weights of a checkpoint of MODEL (its config, then the overrides)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the weight init and the random input (0)"
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--json", type=output_name, metavar="PATH", help="also write the full report as JSON"
    )
    p.add_argument("--no-layers", action="store_true", help="print the summary table only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from medspikeformer.data import check_seed
    from medspikeformer.errors import ConfigError
    from medspikeformer.models import create_model
    from medspikeformer.outputs import OutputNames
    from medspikeformer.profile import profile_model

    check_seed(args.seed, "--seed")
    if args.json:  # checked before profiling: never over the checkpoint, never through a link
        OutputNames([args.checkpoint] if args.checkpoint else []).check_not_input(args.json)
    if len(args.size) > 2:
        raise ConfigError(f"--size takes H or H W, got {len(args.size)} values")
    size = (args.size[0], args.size[-1])
    overrides: dict[str, Any] = {}
    if args.timesteps is not None:
        if args.timesteps < 1:
            raise ConfigError(f"--timesteps must be >= 1, got {args.timesteps}")
        overrides["timesteps"] = args.timesteps
    if args.base_channels is not None:
        overrides["base_channels"] = args.base_channels
    if args.in_channels is not None:
        overrides["in_channels"] = args.in_channels
    if args.neuron is not None:
        overrides["neuron"] = args.neuron
    if args.levels is not None:
        overrides["levels"] = args.levels
    torch.manual_seed(args.seed)  # reproducible initial weights when no checkpoint is given
    if args.checkpoint:
        from medspikeformer.engine.checkpoint import load_checkpoint, load_state_dict_checked
        from medspikeformer.errors import CheckpointError

        ckpt = load_checkpoint(args.checkpoint)
        if ckpt["model_name"] != args.model:
            raise CheckpointError(
                f"{args.checkpoint}: checkpoint holds model {ckpt['model_name']!r}, "
                f"not {args.model!r}"
            )
        model = create_model(args.model, **{**ckpt["model_config"], **overrides})
        load_state_dict_checked(
            model,
            ckpt["state_dict"],
            source=f"{args.checkpoint} (model {args.model!r})",
            target=f"model {args.model!r} with overrides {overrides}",
        )
    else:
        model = create_model(args.model, **overrides)
    from medspikeformer.runtime import resolve_device

    try:
        device = resolve_device(args.device)  # CUDA asked for without CUDA → one-line error
    except RuntimeError as exc:
        raise ConfigError(f"--device {args.device!r}: {exc}") from None
    model.to(device)
    # an ANN is built with T = 1 whatever --timesteps says; profile what was built
    report = profile_model(
        model, size=size, batch=args.batch, seed=args.seed, calibrate_bn=not args.checkpoint
    )
    Console().print(report.to_table(layers=not args.no_layers))
    if args.json:
        report.save_json(args.json)
        Console(stderr=True).print(f"wrote {args.json}")
    return 0
