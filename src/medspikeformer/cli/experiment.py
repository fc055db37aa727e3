"""``medspikeformer experiment compare|ablation``: the paper's tables on any dataset, one command.

    medspikeformer experiment compare  --dataset kvasir --data-root DIR --recipe cpu-quick --out exp/cmp
    medspikeformer experiment ablation --dataset kvasir --data-root DIR --recipe cpu-quick --out exp/abl
    medspikeformer experiment reproduce --dataset kvasir --data-root DIR --out exp/paper   # paper recipe
    medspikeformer experiment cv --dataset kvasir --data-root DIR --recipe cpu --folds 5 --out exp/cv

Re-running the same command continues: finished rows are reused, an interrupted row resumes.
"""

from __future__ import annotations

import argparse
from typing import Any

from medspikeformer.cli.options import output_name


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``experiment`` sub-command."""
    from medspikeformer.experiments.rows import ABLATION_ROWS

    parser = subparsers.add_parser(
        "experiment",
        help="run the comparison or ablation table (train + evaluate + profile every row)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "kind",
        choices=("compare", "ablation", "reproduce", "cv"),
        help="which table; reproduce = Table 1's MedSpikeFormer row at the dataset config "
        "(the paper recipe unless --recipe is given); cv = the --folds folds of one config, "
        "per fold and mean ± std",
    )
    parser.add_argument("--folds", type=int, default=5, help="cv: number of folds (default 5)")
    parser.add_argument(
        "--dataset", required=True, help="dataset name (kvasir, busi, synthetic, ...)"
    )
    parser.add_argument("--data-root", default=None, help="dataset root folder (not for synthetic)")
    parser.add_argument(
        "--recipe", default=None, help="recipe merged over the dataset config, e.g. cpu-quick"
    )
    parser.add_argument(
        "--config",
        default=None,
        help="dataset config (default: the shipped config named after --dataset)",
    )
    parser.add_argument(
        "--out", type=output_name, required=True, help="experiment folder (re-use it to resume)"
    )
    parser.add_argument(
        "--models",
        "--rows",
        dest="rows",
        nargs="+",
        default=None,
        metavar="ROW",
        help=f"rows to run (compare: model names; ablation: {' '.join(r.key for r in ABLATION_ROWS)}"
        "); default all; the reference row is always added",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds per row (mean ± std, paired test)"
    )
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override applied to every row, e.g. --set train.epochs=5 (repeatable)",
    )
    parser.add_argument(
        "--split",
        default=None,
        help="split scored for the tables (default test; cv: val, each fold's held-out cases)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--checkpoint",
        choices=("last", "best"),
        default="last",
        help="checkpoint scored: last (default; no selection on the test set) or best (best val "
        "mIoU; with the paper split val is the test set, as in the authors' code)",
    )
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the experiment; prints where the tables and plots are."""

    from medspikeformer.experiments.runner import ExperimentSpec, run_experiment

    if args.kind == "cv":
        if args.list:
            print("\n".join(f"fold{k}" for k in range(args.folds)))
            return 0
        return run_cv_command(args)
    spec = ExperimentSpec(
        kind=args.kind,
        rows=args.rows,
        seeds=args.seeds,
        eval_split=args.split or "test",
        **_shared_spec(args),
    )
    if args.list:
        for row in spec.row_list():
            extra = {**row.model_overrides, **row.train_overrides}
            print(f"{row.key:16s} {row.label:28s} model={row.model} {extra or ''}")
        return 0
    result = run_experiment(spec)
    print(result.markdown.read_text())
    if args.kind == "reproduce":
        print(table1_line(result.summaries, args.dataset))
    return 0


def _shared_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The fields every experiment's spec (``ExperimentSpec``, ``CVSpec``) takes from the flags."""
    from pathlib import Path

    return {
        "dataset": args.dataset,
        "out": Path(args.out),
        "data_root": args.data_root,
        "recipe": args.recipe,
        "config": args.config,
        "sets": tuple(args.sets),
        "device": args.device,
        "checkpoint": args.checkpoint,
    }


def run_cv_command(args: argparse.Namespace) -> int:
    """``experiment cv``: train the folds, print the per-fold and mean ± std table."""
    from medspikeformer.experiments.cv import CVSpec, run_cv

    result = run_cv(CVSpec(folds=args.folds, eval_split=args.split or "val", **_shared_spec(args)))
    print(result.markdown.read_text())
    return 0


def table1_line(summaries, dataset: str) -> str:
    """One line per row: our figure of Table 1's metric for ``dataset`` beside the paper's."""
    from medspikeformer.experiments.rows import PAPER_TABLE1_METRIC

    metric = PAPER_TABLE1_METRIC.get(dataset, "dsc")
    lines = [f"Table 1 ({dataset}, {metric.upper()}):"]
    for s in summaries:
        ours = s.values.get(metric)
        paper = s.paper[1] if s.paper and s.paper[0] == metric else None
        ours_txt = "—" if ours is None else f"{ours[0]:.4f}"
        paper_txt = "—" if paper is None else f"{paper:.4f}"
        lines.append(f"  {s.label:28s} ours {ours_txt}   paper {paper_txt}")
    return "\n".join(lines)
