"""Evaluation latency: one image (batch 1 by default) through a model in eval mode.

Variants combine ``lif-compiled`` (the model's LIF layers on their fused compiled kernels,
``compile_neurons=True``), ``compile`` (``torch.compile`` of the whole model; its first-call
compile time is reported separately as ``compile_s``), ``fuse`` (every BatchNorm folded: into the preceding
convolution by :func:`medspikeformer.models.fuse.fuse_for_inference`, the one after each SDSA core into the
core by ``fold_attention_norms``; with ``lif-compiled`` this is ``optimize_for_inference``, what
``predict`` runs) and ``channels_last``. Eval mode runs no
stage heads (they feed the training loss only). Everything runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from bench_common import autocast, count_flops, make_row, quiet_compile_errors, sync, time_fn


def bench_infer(
    model: str = "medspikeformer",
    batch: int = 1,
    size: int = 256,
    compile: bool = False,
    fuse: bool = False,
    channels_last: bool = False,
    warmup: int = 2,
    repeat: int = 7,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Median seconds of one eval forward of ``model`` on ``[batch, C, size, size]``."""
    from medspikeformer import create_model

    lif = bool((overrides or {}).get("compile_neurons"))
    tags = [
        t
        for t, on in (
            ("lif-compiled", lif),
            ("fused", fuse),
            ("compiled", compile),
            ("NHWC", channels_last),
        )
        if on
    ]
    variant = "+".join(tags) or "eager"
    params = {
        "model": model,
        "batch": batch,
        "size": size,
        "variant": variant,
        "device": device,
        "overrides": overrides or {},
    }
    name = f"infer {model} b{batch} {size}² {variant}"
    torch.manual_seed(41)
    net = create_model(model, **(overrides or {})).to(device).eval()
    x = torch.randn(batch, net.in_channels, size, size).to(device)
    if fuse:  # every BN folded: into its conv, and the one after each SDSA core into the core
        from medspikeformer.models.fuse import fold_attention_norms, fuse_for_inference

        net = fold_attention_norms(fuse_for_inference(net))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(net) if compile else net

    def fn() -> torch.Tensor:
        with torch.inference_mode(), autocast(device):
            return forward(x)

    compile_s = None
    try:
        with quiet_compile_errors():
            if compile:
                t0 = time.perf_counter()
                fn()
                sync(device)
                compile_s = round(time.perf_counter() - t0, 2)
            timing = time_fn(fn, warmup=warmup, repeat=repeat, device=device)
    except Exception as exc:
        return make_row(
            "infer", name, params, status="failed", notes=f"{type(exc).__name__}: {exc}"
        )

    def eager_fn() -> torch.Tensor:  # same arithmetic; the counter cannot see inside compiled code
        with torch.inference_mode(), autocast(device):
            return net(x)

    gflop = count_flops(eager_fn) / 1e9
    return make_row("infer", name, params, gflop=gflop, compile_s=compile_s, **timing)
