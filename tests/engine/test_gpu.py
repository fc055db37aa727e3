"""CUDA-only checks (``gpu`` marker; skipped with a reason without CUDA, run by
``make gpu-check``): autocast on the GPU, the compiled LIF through Inductor/Triton, the fused
optimiser and the one-read step with torch's own sync detector."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import medspikeformer.engine.trainer as trainer_mod
from medspikeformer.engine.config import config_from_dict
from medspikeformer.models.spike_conv import SpikeSavingConv2d
from medspikeformer.neurons import LIFNeuron
from medspikeformer.neurons.lif import lif_forward_kernel

from .helpers import quiet, tiny_config

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_spike_conv_autocast_on_cuda(dtype: torch.dtype) -> None:
    ours = SpikeSavingConv2d(8, 16, 3, padding=1).to(CUDA)
    ref = nn.Conv2d(8, 16, 3, padding=1).to(CUDA)
    ref.load_state_dict(ours.state_dict())
    x = (torch.rand(4, 8, 32, 32, device=CUDA) < 0.3).float()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    with torch.autocast("cuda", dtype=dtype):
        ya, yb = ours(xa), ref(xb)
    assert ya.dtype == dtype
    torch.testing.assert_close(ya, yb)
    ya.float().sum().backward()
    yb.float().sum().backward()
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compiled_lif_on_cuda_matches_eager(dtype: torch.dtype) -> None:
    """The fused LIF kernels compiled by Inductor (Triton on CUDA): same spikes as eager."""
    torch.manual_seed(0)
    x = (torch.randn(4, 2, 16, 32, 32, device=CUDA) * 1.5).to(dtype)
    compiled = LIFNeuron(compile=True)
    assert compiled._kernels.compiled
    xa = x.clone().requires_grad_()
    out = compiled(xa)
    ref = lif_forward_kernel(x, 2.0, 1.0, False)[0]
    assert compiled._kernels.compiled, "compiled LIF fell back to eager on CUDA"
    assert torch.equal(out, ref)
    out.float().sum().backward()
    eager = LIFNeuron()
    xb = x.clone().requires_grad_()
    eager(xb).float().sum().backward()
    torch.testing.assert_close(xa.grad.float(), xb.grad.float(), rtol=1e-2, atol=1e-3)


def _run(tmp_path: Path, precision: str) -> trainer_mod._Run:
    cfg = config_from_dict(
        tiny_config(
            tmp_path / precision,
            data={"options": {"num_samples": 16}},
            train={"epochs": 1, "batch_size": 2, "progress": False, "precision": precision},
        )
    )
    run = trainer_mod._Run(cfg, resume_dir=None, log=quiet)
    run.setup()
    return run


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_step_syncs_at_most_once(tmp_path: Path, precision: str) -> None:
    """torch.cuda's own sync detector ("warn") over a training epoch: no sync per step where the
    finite check is deferred (fp32/bf16), one for the verdict read under fp16's scaler, plus
    the epoch end's reads; fused Adam; cuDNN benchmark on; pinned loader memory."""
    run = _run(tmp_path, precision)
    try:
        assert run.device.type == "cuda" and torch.backends.cudnn.benchmark
        assert run.train_loader.pin_memory
        assert run.opt.defaults.get("fused") is True
        run.train_epoch(1)  # warm-up (lazy optimiser state, cuDNN autotuning)
        steps = len(run.train_loader)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                out = run.train_epoch(2)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
        per_step = steps if precision == "fp16" else 0
        assert len(syncs) <= per_step + 3, [str(w.message)[:120] for w in syncs]
        assert out["nan_skipped"] == 0
    finally:
        run.close()
    assert run.precision == precision


def test_deterministic_joint_step_on_cuda(tmp_path: Path) -> None:
    """``--deterministic`` on CUDA: cuBLAS gets its workspace and the teacher's key/value
    pooling has a deterministic backward, so one joint-teacher epoch runs and repeats exactly."""
    weights = []
    for name in ("a", "b"):
        cfg = tiny_config(
            tmp_path / name,
            teacher={"mode": "joint"},
            data={"size": 64, "options": {"num_samples": 8}},
            model={**tiny_config("x")["model"], "n_kv": 16},
            train={"epochs": 1, "batch_size": 2, "deterministic": True, "device": "cuda"},
        )
        trainer_mod.train(cfg, log=quiet)
        weights.append(torch.load(tmp_path / name / "last.pt", weights_only=True)["state_dict"])
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
