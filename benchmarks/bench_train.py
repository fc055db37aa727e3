"""Full training step: forward, Eq. 13 loss (+ alignment), backward, Adam step; peak RSS.

One configuration per fresh process (``run_all`` uses :func:`bench_common.run_isolated`), so
``peak_rss_gb`` is that configuration's own peak. Teacher modes:

* ``none``: the model alone, ``L_seg`` (Eq. 13);
* ``joint``: the paper's recipe — the ANN twin trains in the same step on its own ``L_seg`` with
  its own Adam; its stage logits enter the student's alignment loss detached, so the teacher is
  run once (no second no-grad pass) and no gradient flows from the student into it;
* ``frozen``: a frozen teacher run under ``torch.inference_mode`` for the alignment target only.

Inputs are random images ``N(0, 1)`` with a disc mask per image; the FLOPs of one step come from
:class:`torch.utils.flop_counter.FlopCounterMode` (forward + backward of every network trained).
"""

from __future__ import annotations

from typing import Any

import torch

from bench_common import count_flops, make_row, quiet_compile_errors, time_fn
from medspikeformer.precision import autocast

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
    """Build model(s), optimiser(s), data and return ``(step_fn, info)``.

    ``precision``: as ``train.precision`` (``auto`` = bf16 autocast on CUDA, none on CPU); the
    losses are float32 either way. ``fp16`` runs without a gradient scaler (timing only).
    """
    from medspikeformer import create_model
    from medspikeformer.losses import AlignmentLoss, BCEDiceLoss

    if teacher not in TEACHER_MODES:
        raise ValueError(f"unknown teacher mode {teacher!r}; known: {', '.join(TEACHER_MODES)}")
    torch.manual_seed(41)
    model = create_model(model_name, **(overrides or {})).to(device).train()
    info: dict[str, Any] = {
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "timesteps": getattr(model, "timesteps", 1),
    }
    mem_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=mem_format)
    x = torch.randn(batch, model.in_channels, size, size).to(device, memory_format=mem_format)
    y = disc_masks(batch, size, size).to(device)
    seg = BCEDiceLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)  # as the engine builds it
    forward = torch.compile(model) if compile else model

    if teacher == "none":

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with autocast(device, precision):
                out = forward(x)
                logits = out.logits if hasattr(out, "logits") else out
                loss = seg(logits.float(), y)
            loss.backward()
            opt.step()

        return step, info

    from medspikeformer.models import build_teacher

    twin = build_teacher(model).to(device, memory_format=mem_format)
    align = AlignmentLoss()
    if teacher == "frozen":
        twin.eval().requires_grad_(False)
    else:
        twin.train()
    t_forward = torch.compile(twin) if compile else twin
    t_opt = torch.optim.Adam(twin.parameters(), lr=1e-4, fused=True) if teacher == "joint" else None
    info["teacher_params_m"] = round(sum(p.numel() for p in twin.parameters()) / 1e6, 3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            out = forward(x)
            if teacher == "joint":
                assert t_opt is not None
                t_opt.zero_grad(set_to_none=True)
                t_out = t_forward(x)
                t_loss = seg(t_out.logits.float(), y)
                targets = [s.detach() for s in t_out.stage_logits]
            else:
                with torch.inference_mode():
                    t_targets = twin.forward_all(x).stage_logits
                targets = [s.clone() for s in t_targets]  # leave inference mode
                t_loss = None
            loss = seg(out.logits.float(), y) + align(
                [s.float() for s in out.stage_logits], [s.float() for s in targets]
            )
        total = loss if t_loss is None else loss + t_loss
        total.backward()
        opt.step()
        if t_opt is not None:
            t_opt.step()

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
            gflop = None
            if count:  # FLOPs are linear in the batch: count a small-batch step (cheaper)
                nb = min(batch, 2)  # 2, not 1: training BN needs > 1 value per channel
                small, _ = build_step(
                    model, nb, size, teacher, device, False, channels_last, overrides, precision
                )
                gflop = count_flops(small) / 1e9 * batch / nb
                del small
            timing = time_fn(step, warmup=warmup, repeat=repeat, device=device)
    except Exception as exc:
        return make_row(
            "train", name, params, status="failed", notes=f"{type(exc).__name__}: {exc}"
        )
    return make_row("train", name, params, gflop=gflop, **info, **timing)
