"""Mask agreement of the inference defaults (BN folded, compiled LIF) with the model as trained.

``predict`` and ``evaluate`` run :func:`medspikeformer.models.fuse.optimize_for_inference` unless
``--exact``. Folding a BN into its conv changes float rounding, and in a spiking network a
membrane that lands within that rounding of the threshold flips a spike; this script measures
what that does to the masks of a trained checkpoint on real images:

    python benchmarks/mask_agreement.py CKPT [CKPT ...] --images DIR [--limit N] [--mode resize]

For every image: the mask of the exact model and of the optimised one (same predictor settings),
the share of pixels that agree, and the Dice between the two masks. Prints a table per checkpoint
(mean, minimum) and, with ``--out``, writes ``mask_agreement.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks (1.0 when both are empty)."""
    a, b = a > 0, b > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def agreement(ckpt: Path, images: list[Path], mode: str | None) -> dict:
    """Compare the exact and the optimised predictor of ``ckpt`` on ``images``."""
    from medspikeformer.data.io import read_image
    from medspikeformer.inference.predict import Predictor

    options = {} if mode is None else {"mode": mode}
    exact = Predictor.from_checkpoint(ckpt, exact=True, **options)
    fast = Predictor.from_checkpoint(ckpt, **options)
    rows, t_exact, t_fast = [], 0.0, 0.0
    for path in images:
        image = read_image(path)
        t0 = time.perf_counter()
        m_exact = exact.predict_array(image)
        t1 = time.perf_counter()
        m_fast = fast.predict_array(image)
        t2 = time.perf_counter()
        t_exact, t_fast = t_exact + t1 - t0, t_fast + t2 - t1
        rows.append(
            {
                "image": path.name,
                "pixel_agreement": float((m_exact == m_fast).mean()),
                "mask_dice": dice(m_exact, m_fast),
                "identical": bool(np.array_equal(m_exact, m_fast)),
            }
        )
    agree = [r["pixel_agreement"] for r in rows]
    dices = [r["mask_dice"] for r in rows]
    return {
        "checkpoint": str(ckpt),
        "images": len(rows),
        "identical_masks": sum(r["identical"] for r in rows),
        "pixel_agreement_mean": float(np.mean(agree)),
        "pixel_agreement_min": float(np.min(agree)),
        "mask_dice_mean": float(np.mean(dices)),
        "mask_dice_min": float(np.min(dices)),
        "seconds_exact": t_exact,
        "seconds_optimised": t_fast,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--images", type=Path, required=True, help="folder of images (recursive)")
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    parser.add_argument(
        "--skip", default="_mask", help="leave out files whose name contains this (masks)"
    )
    parser.add_argument("--mode", choices=["resize", "sliding"], help="default: the checkpoint's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    images = sorted(
        p
        for p in args.images.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not (args.skip and args.skip in p.name)
    )
    if args.limit:
        images = images[: args.limit]
    if not images:
        print(f"no images under {args.images}", file=sys.stderr)
        return 2
    results = [agreement(ckpt, images, args.mode) for ckpt in args.checkpoints]
    print("| checkpoint | images | identical masks | pixel agreement mean (min) | mask Dice mean "
          "(min) | s exact | s optimised |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['checkpoint']} | {r['images']} | {r['identical_masks']} | "
            f"{r['pixel_agreement_mean']:.6f} ({r['pixel_agreement_min']:.6f}) | "
            f"{r['mask_dice_mean']:.6f} ({r['mask_dice_min']:.6f}) | "
            f"{r['seconds_exact']:.1f} | {r['seconds_optimised']:.1f} |"
        )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "mask_agreement.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
