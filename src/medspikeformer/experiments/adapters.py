"""The engine seen from one experiment row: train (or resume) it, evaluate its checkpoint,
profile its model — each returns plain data for the row's ``result.json``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from medspikeformer.experiments.folders import TRAINED_NAME, read_record, write_json

__all__ = ["eval_payload", "evaluate_row", "profile_row", "train_row", "train_time_from_csv"]


def train_time_from_csv(run_dir: Path) -> float | None:
    """Sum of the per-epoch wall times in the engine's ``metrics.csv`` (covers resumed runs)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "time_s" not in rows[0]:  # the engine's per-epoch wall time column
        return None
    try:
        return float(sum(float(r["time_s"]) for r in rows if r.get("time_s") not in (None, "")))
    except ValueError:
        return None


def train_row(config, run_dir: Path) -> dict[str, Any]:
    """Train one row, or resume it from ``run_dir/last.pt``; returns the engine's result dict.

    The result is also written to ``run_dir/trained.json``: its presence means training is over
    (also after an early stop), so an interruption during evaluation does not train again.
    """
    from medspikeformer.engine import train

    marker = run_dir / TRAINED_NAME
    done = read_record(marker)
    if done is not None:
        return done
    resume = run_dir if (run_dir / "last.pt").is_file() else None
    result = dict(train(config, resume=resume) or {})
    result["resumed"] = resume is not None
    write_json(marker, result)
    return result


def evaluate_row(config, run_dir: Path, split: str, checkpoint: str = "last") -> dict[str, Any]:
    """Score the run's ``last.pt`` (or ``best.pt``) on ``split`` of the experiment's split file."""
    from medspikeformer.engine.checkpoint import load_model
    from medspikeformer.engine.datasets import dataset_from_config
    from medspikeformer.engine.task import class_names
    from medspikeformer.inference import evaluate
    from medspikeformer.runtime import resolve_device

    ckpt_path = run_dir / f"{checkpoint}.pt"
    if not ckpt_path.is_file():
        ckpt_path = run_dir / "last.pt"
    model, ckpt = load_model(ckpt_path)
    dataset = dataset_from_config(config, split, in_channels=model.in_channels)
    device = resolve_device(config.train.device)
    names = class_names(model, config)  # None for a binary model
    res = evaluate(
        model.to(device),
        dataset,
        threshold=config.train.threshold,
        device=device,
        class_names=names,
    )
    return {"result": res, "model": model, "dataset": dataset, "ckpt": ckpt, "path": ckpt_path}


def eval_payload(res: Any) -> tuple[dict[str, float], dict[str, float]]:
    """``(global metrics, {id: dice})`` from the inference :class:`EvalResult`."""
    metrics = res.metrics
    dice = {str(p["id"]): float(p["dice"]) for p in res.per_image}
    out = {
        "miou": metrics.get("miou"),
        "dsc": metrics.get("dsc"),
        "acc": metrics.get("acc"),
        "spe": metrics.get("spe"),
        "sen": metrics.get("sen"),
        "dice_per_image": metrics.get("mean_dice"),
        "iou_per_image": metrics.get("mean_iou"),
    }
    if out["dice_per_image"] is None and dice:
        out["dice_per_image"] = float(sum(dice.values()) / len(dice))
    return {k: (None if v is None else float(v)) for k, v in out.items()}, dice


def profile_row(model, dataset, size: int, max_images: int = 4) -> dict[str, Any]:
    """Params, GFLOPs, mean firing rate and energy per image at the training size.

    Firing rates depend on the input, so they are measured on the first ``max_images`` test
    images (an empty dataset: the profiler's seeded random input; recorded in
    ``firing_rate_input``). Counts are divided by the batch: per image.
    """
    import torch

    from medspikeformer.profile import profile_model

    model = model.cpu().eval()
    n = min(max_images, len(dataset))
    kwargs: dict[str, Any] = {"size": (size, size)}
    source = "random"
    if n:
        kwargs["inputs"] = torch.stack([dataset[i]["image"] for i in range(n)])
        kwargs["batch"] = n
        source = f"{n} test images"
    report = profile_model(model, **kwargs)
    per = 1.0 / int(report.input_shape[0])
    spiking = bool(report.is_spiking)
    return {
        "size": [size, size],
        "params_m": report.params / 1e6,
        "gflops": report.flops * per / 1e9,
        "gflops_per_timestep": report.flops_per_timestep * per / 1e9,
        "gmacs": report.macs * per / 1e9,
        "timesteps": int(report.timesteps),
        "firing_rate": report.mean_firing_rate if spiking else None,
        "firing_rate_input": source if spiking else None,
        "energy_mj": report.energy_mj * per,
    }
