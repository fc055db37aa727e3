"""Mixed-precision error against float32: the decomposed attention core and whole models.

Two measurements (docs/training.md, "Precision", quotes their figures):

* :func:`core_rounding_error` — the decomposed attention core (paper Eq. 9, linear form) on fixed
  random spike matrices Q, K, V, computed in float32 and in ``dtype`` (autocast), each followed by
  the same training-mode BatchNorm (batch statistics, no affine). Reports the largest and mean
  error of the normalised output in units of its standard deviation σ and the fraction of its
  signs that flip — the LIF after that BN sees exactly these errors. It shows why the core runs
  in float32 under autocast: the output is a large per-channel constant plus a small
  token-dependent part, and a 16-bit format rounds away a visible share of the small part.
* :func:`model_precision_error` — one training forward/backward of a registered model in float32
  and under ``dtype`` autocast from the same weights and input: the spike flip rate of every LIF
  layer (bf16 vs fp32 spikes at the same position), the loss difference and the relative
  difference of the parameter gradients.

Run ``python benchmarks/bench_precision.py`` for the table (CPU, a few seconds at the defaults).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # run as a script or imported by gpu_check / the tests
    sys.path.insert(0, str(BENCH_DIR))

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Not a precision: a float32 run whose *input* image alone is rounded to bf16 — the baseline that
#: shows how far a perturbation of 2⁻⁹ relative spreads through the spiking layers by itself.
INPUT_ROUNDED = "fp32-input-bf16"


def _spikes(shape: tuple[int, ...], rate: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) < rate).float()


def _normalise(o: torch.Tensor) -> torch.Tensor:
    """Training-mode BN without affine over the channels of ``[T·B, heads, N, 2d]``."""
    tb, nh, n, d2 = o.shape
    flat = o.permute(0, 1, 3, 2).reshape(tb, nh * d2, n)  # channels second, like from_heads
    return F.batch_norm(flat, None, None, training=True, eps=1e-5)


def core_rounding_error(
    side: int = 32,
    dim: int = 32,
    heads: int = 1,
    batch: int = 2,
    timesteps: int = 4,
    rate: float = 0.25,
    dtype: str = "bf16",
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Error of the BN-normalised decomposed-attention output when the core runs in ``dtype``.

    Q, K, V: independent 0/1 spikes at firing ``rate`` (``[T·B, heads, N, d]``, N = side²).
    """
    from medspikeformer.attention.decomposed import decomposed_attention

    gen = torch.Generator().manual_seed(seed)
    n, d = side * side, dim // heads
    shape = (timesteps * batch, heads, n, d)
    q, k, v = (_spikes(shape, rate, gen).to(device) for _ in range(3))
    ref_out = decomposed_attention(q, k, v)
    with torch.autocast(torch.device(device).type, dtype=DTYPES[dtype]):
        low_out = decomposed_attention(
            q.to(DTYPES[dtype]), k.to(DTYPES[dtype]), v.to(DTYPES[dtype])
        )
    ref = _normalise(ref_out.double())
    low = _normalise(low_out.double())
    err = (low - ref).abs()  # ref has unit variance per channel: errors are in units of σ
    flips = (torch.sign(low) != torch.sign(ref)).double().mean()
    mean = ref_out.mean(dim=(0, 2)).double()  # per-channel constant part
    spread = ref_out.std(dim=(0, 2)).double()  # token-dependent part
    return {
        "kind": "core",
        "dtype": dtype,
        "side": side,
        "N": n,
        "dim": dim,
        "heads": heads,
        "output_mean": round(float(mean.mean()), 4),
        "output_std": round(float(spread.mean()), 4),
        "max_err_sigma": round(float(err.max()), 4),
        "mean_err_sigma": round(float(err.mean()), 5),
        "sign_flip_rate": round(float(flips), 5),
        "device": device,
    }


def _lif_outputs(model: torch.nn.Module) -> tuple[list[torch.Tensor], list]:
    from medspikeformer.neurons import LIFNeuron

    outs: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, o: outs.append(o.detach()))
        for m in model.modules()
        if isinstance(m, LIFNeuron)
    ]
    return outs, handles


def model_precision_error(
    model: str = "medspikeformer",
    size: int = 32,
    batch: int = 2,
    dtype: str = "bf16",
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """One training forward + backward in float32 and under ``dtype`` autocast, same weights/input.

    ``dtype`` :data:`INPUT_ROUNDED` compares float32 with float32 on the bf16-rounded input;
    ``checkpoint`` takes the weights of a trained model instead of a random initialisation.

    Returns the spike flip rate over all LIF outputs (and the worst layer), the loss of both, the
    largest relative gradient difference ``‖g − g₃₂‖ / ‖g₃₂‖`` over parameters with a non-zero
    float32 gradient and the global one (all parameters concatenated).
    """
    import copy

    from medspikeformer import create_model
    from medspikeformer.losses import BCEDiceLoss

    torch.manual_seed(seed)
    if checkpoint is not None:
        from medspikeformer.engine.checkpoint import load_model

        ref_model, _ = load_model(checkpoint)
        model = getattr(ref_model, "model_name", model)
    else:
        ref_model = create_model(model, **(overrides or {}))
    ref_model = ref_model.to(device).train()
    low_model = copy.deepcopy(ref_model)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, ref_model.in_channels, size, size, generator=gen).to(device)
    y = (torch.rand(batch, 1, size, size, generator=gen) < 0.3).float().to(device)
    seg = BCEDiceLoss()
    results = {}
    low_dtype = DTYPES.get(dtype)  # None: a float32 run (INPUT_ROUNDED, or "fp32" itself)
    for tag, net, dt in (("ref", ref_model, None), ("low", low_model, low_dtype)):
        spikes, handles = _lif_outputs(net)
        inp = x.bfloat16().float() if tag == "low" and dtype == INPUT_ROUNDED else x
        try:
            with torch.autocast(
                torch.device(device).type, dtype=dt or torch.float32, enabled=dt is not None
            ):
                logits = net(inp)  # the model contract: logits in train mode too
            loss = seg(logits, y)
            loss.backward()
        finally:
            for h in handles:
                h.remove()
        grads = [
            p.grad.detach().double().flatten()
            if p.grad is not None
            else torch.zeros(p.numel(), dtype=torch.float64, device=p.device)
            for p in net.parameters()
        ]
        results[tag] = {"spikes": spikes, "loss": float(loss.detach()), "grads": grads}
    ref, low = results["ref"], results["low"]
    layer_rates = [
        float((a.float() != b.float()).float().mean()) for a, b in zip(ref["spikes"], low["spikes"])
    ]
    total = sum(a.numel() for a in ref["spikes"])
    flipped = sum(int((a.float() != b.float()).sum()) for a, b in zip(ref["spikes"], low["spikes"]))
    rel = [
        float((gl - gr).norm() / gr.norm())
        for gr, gl in zip(ref["grads"], low["grads"])
        if float(gr.norm()) > 0
    ]
    g_ref, g_low = torch.cat(ref["grads"]), torch.cat(low["grads"])
    return {
        "kind": "model",
        "model": model,
        "dtype": dtype,
        "size": size,
        "batch": batch,
        "lif_layers": len(layer_rates),
        "spike_flip_rate": round(flipped / total, 5) if total else None,
        "worst_layer_flip_rate": round(max(layer_rates), 5) if layer_rates else None,
        "first_layer_flip_rate": round(layer_rates[0], 5) if layer_rates else None,
        "grad_finite": bool(torch.isfinite(g_low).all()),
        "loss_fp32": round(ref["loss"], 6),
        "loss_low": round(low["loss"], 6),
        "loss_abs_diff": round(abs(ref["loss"] - low["loss"]), 6),
        "grad_rel_diff_global": round(float((g_low - g_ref).norm() / g_ref.norm()), 5),
        "grad_rel_diff_max": round(max(rel), 5) if rel else None,
        "device": device,
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def markdown(rows: list[dict[str, Any]]) -> str:
    """Two small tables: core rows, then model rows."""
    lines = []
    core = [r for r in rows if r["kind"] == "core"]
    if core:
        lines += [
            "| core dtype | N | d | output mean ± std | max error (σ) | mean error (σ) | sign flips |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['dtype']} | {r['N']} | {r['dim'] // r['heads']} | {r['output_mean']} ± "
            f"{r['output_std']} | {r['max_err_sigma']} | {r['mean_err_sigma']} | "
            f"{100 * r['sign_flip_rate']:.2f} % |"
            for r in core
        ]
    model = [r for r in rows if r["kind"] == "model"]
    if model:
        lines += [
            "",
            "| model | dtype | spike flips (all LIF) | worst layer | loss fp32 → low | grad rel. diff (global / worst tensor) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {r['dtype']} | {_pct(r['spike_flip_rate'])} | "
            f"{_pct(r['worst_layer_flip_rate'])} | {r['loss_fp32']:.4f} → {r['loss_low']:.4f} | "
            f"{r['grad_rel_diff_global']:.3g} / {r['grad_rel_diff_max']:.3g} |"
            for r in model
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--sides", default="32,64,128", help="core: token grid sides (N = side²)")
    p.add_argument("--dtypes", default="bf16,fp16")
    p.add_argument("--models", default="medspikeformer,ssa,sdt,qk,unet,ann")
    p.add_argument("--size", type=int, default=64, help="model rows: image size")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--checkpoint", help="model rows: a trained checkpoint instead of --models")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for dtype in args.dtypes.split(","):
        for side in (int(s) for s in args.sides.split(",") if s):
            rows.append(core_rounding_error(side=side, dtype=dtype, device=args.device))
    models = [args.checkpoint] if args.checkpoint else [m for m in args.models.split(",") if m]
    for dtype in [*args.dtypes.split(","), INPUT_ROUNDED]:
        for name in models:
            ckpt = name if args.checkpoint else None
            rows.append(
                model_precision_error(
                    name,
                    size=args.size,
                    batch=args.batch,
                    dtype=dtype,
                    device=args.device,
                    checkpoint=ckpt,
                )
            )
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(math.isfinite(r.get("max_err_sigma", 0.0)) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
