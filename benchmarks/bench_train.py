"""Full training step — the engine's own (``medspikeformer.engine.TrainingStep``): forward,
Eq. 13 loss (+ alignment), backward, finite check, Adam step; peak RSS.

One configuration per fresh process (``run_all`` uses :func:`bench_common.run_isolated`), so
``peak_rss_gb`` is that configuration's own peak. Teacher modes (``teacher.mode``):

* ``none``: the model alone, ``L_seg`` (Eq. 13);
* ``joint``: the paper's recipe — the ANN twin trains in the same step on its own ``L_seg`` (+ its
  stage supervision) with its own Adam; its stage logits enter the student's alignment loss
  detached, so the teacher is run once and no gradient flows from the student into it;
* ``frozen``: a frozen twin (from a checkpoint) run under ``no_grad`` for the alignment target.

Inputs are random images ``N(0, 1)`` with a disc mask per image; the FLOPs of one step come from
:class:`torch.utils.flop_counter.FlopCounterMode` (forward + backward of every network trained).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench_common import count_flops, make_row, quiet_compile_errors, time_fn

MODELS = ("medspikeformer", "ssa", "sdt", "qk", "ann", "unet")
TEACHER_MODES = ("none", "joint", "frozen")


def disc_masks(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``[B, 1, H, W]`` binary masks, one disc of random centre and radius per image."""
    gen = torch.Generator().manual_seed(seed)
    yy = torch.arange(height).view(-1, 1).float()
    xx = torch.arange(width).view(1, -1).float()
    masks = []
    for _ in range(batch):
        cy, cx = (torch.rand(2, generator=gen) * 0.5 + 0.25).tolist()
        r = float(torch.rand(1, generator=gen)) * 0.2 + 0.1
        d2 = ((yy / height - cy) ** 2) + ((xx / width - cx) ** 2)
        masks.append((d2 < r * r).float())
    return torch.stack(masks)[:, None]


def build_step(
    model_name: str,
    batch: int,
    size: int,
    teacher: str = "none",
    device: str = "cpu",
    compile: bool = False,
    channels_last: bool = False,
    overrides: dict[str, Any] | None = None,
    precision: str = "auto",
):
    """The engine's real training step (:class:`medspikeformer.engine.TrainingStep`) of a config
    with this model, size, precision and teacher, on one fixed batch; returns ``(step_fn, info)``.

    ``step_fn.training_step`` is the :class:`TrainingStep` (models, optimisers). ``frozen``
    writes the ANN twin's weights to a temporary checkpoint and trains against it, as
    ``teacher.mode: PATH`` does.
    """
    import tempfile

    from medspikeformer.engine import TrainingStep, load_config
    from medspikeformer.engine.checkpoint import build_payload, save_checkpoint
    from medspikeformer.models import build_teacher, create_model

    if teacher not in TEACHER_MODES:
        raise ValueError(f"unknown teacher mode {teacher!r}; known: {', '.join(TEACHER_MODES)}")
    mode = teacher
    if teacher == "frozen":
        torch.manual_seed(41)
        twin = build_teacher(create_model(model_name, **(overrides or {})))
        folder = Path(tempfile.mkdtemp(prefix="bench-teacher-"))
        mode = str(save_checkpoint(folder / "teacher.pt", build_payload(twin)))
    cfg = load_config(
        overrides={
            "model": {"name": model_name, **(overrides or {})},
            "data": {"size": size},
            "teacher": {"mode": mode},
            "train": {
                "batch_size": batch,
                "device": device,
                "compile": compile,
                "channels_last": channels_last,
                "precision": precision,
                "seed": 41,
            },
        }
    )
    ts = TrainingStep.from_config(cfg)
    if compile:
        ts.wrap(compile=True)
    model = ts.student
    info: dict[str, Any] = {
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "timesteps": model.timesteps,
    }
    if ts.teacher is not None:
        info["teacher_params_m"] = round(sum(p.numel() for p in ts.teacher.parameters()) / 1e6, 3)
    images = torch.randn(batch, model.in_channels, size, size)
    data = {"image": images, "mask": disc_masks(batch, size, size)}

    def step() -> None:
        ts.step(data)

    step.training_step = ts  # type: ignore[attr-defined]
    return step, info


def bench_train(
    model: str = "medspikeformer",
    batch: int = 2,
    size: int = 256,
    teacher: str = "none",
    warmup: int = 2,
    repeat: int = 3,
    device: str = "cpu",
    compile: bool = False,
    channels_last: bool = False,
    count: bool = True,
    overrides: dict[str, Any] | None = None,
    precision: str = "auto",
) -> dict[str, Any]:
    """Median seconds of one training step (after ``warmup`` steps) and its GFLOP."""
    params = {
        "model": model,
        "teacher": teacher,
        "batch": batch,
        "size": size,
        "device": device,
        "compile": compile,
        "channels_last": channels_last,
        "overrides": overrides or {},
        "precision": precision,
    }
    label = model if teacher == "none" else f"{model}+{teacher}-teacher"
    name = f"train {label} b{batch} {size}²"
    try:
        with quiet_compile_errors():
            step, info = build_step(
                model, batch, size, teacher, device, compile, channels_last, overrides, precision
            )
            timing = time_fn(step, warmup=warmup, repeat=repeat, device=device)
            del step  # the timed step's memory is not the counting step's
            gflop = None
            if count:  # FLOPs are linear in the batch: count a small-batch step (cheaper)
                # After the timing: with a counted step (a second model) run first, the timed
                # steps of b2 256² took 6.9 s instead of 4.4 s (docs/performance.md).
                nb = min(batch, 2)  # 2, not 1: training BN needs > 1 value per channel
                small, _ = build_step(
                    model, nb, size, teacher, device, False, channels_last, overrides, precision
                )
                gflop = count_flops(small) / 1e9 * batch / nb
                del small
    except Exception as exc:
        return make_row(
            "train", name, params, status="failed", notes=f"{type(exc).__name__}: {exc}"
        )
    return make_row("train", name, params, gflop=gflop, **info, **timing)
