"""``medspikeformer data check|show``: validate a dataset folder or draw image/mask pairs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from medspikeformer.cli.options import add_loader_option_argument, output_name, parse_loader_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="check a dataset folder or preview its pairs")
    sub = p.add_subparsers(dest="data_command")
    sub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("name", help="dataset name (see `medspikeformer data list`)")
        q.add_argument("--root", "--data-root", default=None, help="dataset folder as downloaded")
        add_loader_option_argument(q)

    c = sub.add_parser("check", help="counts, missing pairs, size mismatches, non-binary masks")
    common(c)
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.add_argument(
        "--labels",
        default=None,
        metavar="YAML",
        help="masks are label maps with these classes, e.g. '{background: 0, lesion: 1}': "
        "report class frequencies and unknown ids (a Decathlon folder's dataset.json labels "
        "are the default there)",
    )
    c.set_defaults(func=run)

    s = sub.add_parser("show", help="write a PNG grid of image/mask pairs (mask overlaid)")
    common(s)
    s.add_argument("--out", type=output_name, required=True, help="PNG file to write")
    s.add_argument("-n", type=int, default=8, help="number of pairs (default 8)")
    s.add_argument("--columns", type=int, default=None, help="pairs per row (default: all)")
    s.add_argument("--size", type=int, default=192, help="tile size in pixels (default 192)")
    s.add_argument("--split", default="all", help="train/val/test/all (default all)")
    s.add_argument("--split-spec", default="paper")
    s.add_argument(
        "--colors", type=int, default=0, help="palette size for a smaller PNG (0 = full colour)"
    )
    s.set_defaults(func=run)

    ls = sub.add_parser("list", help="list dataset names")
    ls.set_defaults(func=run)
    sub.metavar = "{" + ",".join(sub.choices) + "}"  # every sub-command, as registered


def run(args: argparse.Namespace) -> int:
    from medspikeformer.data import list_datasets

    if args.data_command == "list":
        print("\n".join(list_datasets()))
        return 0
    options = parse_loader_options(args.option, command="data check/show")
    if args.data_command == "check":
        return _check(args, options)
    return _show(args, options)


def _check(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from rich.console import Console

    from medspikeformer.data.check import check_dataset

    labels = None
    if args.labels is not None:
        import yaml

        from medspikeformer.errors import ConfigError

        try:
            labels = yaml.safe_load(args.labels)
        except yaml.YAMLError:
            raise ConfigError(f"--labels {args.labels!r}: not a YAML mapping") from None
    report = check_dataset(args.name, args.root, progress=True, labels=labels, **options)
    summary = report.summary()
    if args.json:
        print(json.dumps({**summary, "problems": report.errors, "notes": report.notes}, indent=1))
        return 0 if report.ok else 1
    from medspikeformer.errors import printable

    con = Console(highlight=False, soft_wrap=True)
    from rich.markup import escape

    con.print(
        f"[bold]{escape(printable(args.name))}[/bold] at {escape(printable(summary['root']))}"
    )
    parts = ", ".join(f"{k}: {v}" for k, v in sorted(summary["parts"].items()) if k != "unassigned")
    parts = f"official parts {parts}" if parts else "no official split"
    unpaired = summary.get("unpaired", 0)
    alone = f"   without their other half: {unpaired}" if unpaired else ""
    con.print(
        f"  pairs found: {summary['pairs']}{alone}   decoded OK: {summary['checked']}   ({parts})"
    )
    if "image_size" in summary:
        s = summary["image_size"]
        con.print(
            f"  image size (H×W): {s['min_hw'][0]}×{s['min_hw'][1]} … {s['max_hw'][0]}×{s['max_hw'][1]}"
        )
    if "foreground_fraction" in summary:
        f = summary["foreground_fraction"]
        con.print(
            f"  foreground fraction: mean {f['mean']:.4f}  median {f['median']:.4f}  "
            f"min {f['min']:.4f}  max {f['max']:.4f}  empty masks {f['empty_masks']}"
        )
    if "mask_pixels_far_from_0_255" in summary:
        f = summary["mask_pixels_far_from_0_255"]
        con.print(
            f"  mask pixels far from 0/255: mean {100 * f['mean']:.3f}%  max {100 * f['max']:.3f}%"
        )
    for name, c in summary.get("classes", {}).items():
        con.print(
            f"  class {name}: {100 * c['fraction']:.3f}% of labelled pixels, in {c['images']} image(s)",
            markup=False,
        )
    for i, n in summary.get("unknown_ids", {}).items():
        con.print(f"  unknown label id {i}: in {n} image(s)")
    for note in report.notes:
        con.print(f"  note: {printable(note)}", markup=False)
    if report.errors:
        con.print(f"[red]{len(report.errors)} problem(s):[/red]")
        for e in report.errors[:50]:
            con.print(f"  - {printable(e)}", markup=False)
        if len(report.errors) > 50:
            con.print(f"  … and {len(report.errors) - 50} more")
        return 1
    con.print("[green]no problems found[/green]")
    return 0


def _show(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from pathlib import Path

    from PIL import Image

    from medspikeformer.data import build_dataset
    from medspikeformer.data.check import preview_grid
    from medspikeformer.errors import ConfigError
    from medspikeformer.outputs import OutputNames

    if args.n < 1:
        raise ConfigError(f"-n {args.n}: the number of pairs must be at least 1")
    if args.size < 8 or args.size > 4096:
        raise ConfigError(f"--size {args.size}: the tile size must lie in 8…4096 pixels")
    if args.columns is not None and args.columns < 1:
        raise ConfigError(f"--columns {args.columns}: must be at least 1")
    if not 0 <= args.colors <= 256:
        raise ConfigError(f"--colors {args.colors}: a PNG palette holds 0 (off) to 256 colours")
    ds = build_dataset(
        args.name,
        root=args.root,
        split=args.split,
        size=args.size,
        split_spec=args.split_spec,
        cache_dir=False,
        **options,
    )
    out = Path(args.out)
    # every file of the dataset is an input: the picture never replaces one
    names = OutputNames(f for sample in ds.source.scan().samples for f in sample.files)
    if ds.source.root is not None and Path(ds.source.root).is_dir():
        for f in Path(ds.source.root).rglob("*"):
            names.add_input(f)
    names.check_not_input(out, source=f"data show {args.name}")
    grid = preview_grid(ds, n=args.n, columns=args.columns)
    picture = Image.fromarray(grid)
    if args.colors:
        picture = picture.quantize(colors=args.colors, dither=Image.Dither.NONE)
    try:
        from medspikeformer.outputs import atomic_path

        fmt = Image.registered_extensions().get(out.suffix.lower())
        if fmt is None:
            raise ValueError(f"unknown picture extension {out.suffix!r}")
        with atomic_path(out) as tmp:
            picture.save(tmp, format=fmt, optimize=True)
    except (OSError, ValueError) as exc:  # not writable / a file in the way / unknown extension
        raise ConfigError(f"{out}: cannot write the picture ({exc.strerror or exc})") from None
    print(
        f"wrote {out} ({min(args.n, len(ds))} pairs of {args.name}/{args.split}, {grid.shape[1]}×{grid.shape[0]} px)"
    )
    return 0
