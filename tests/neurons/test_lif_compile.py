"""The compiled ("fused") LIF inside a whole training run: compiled once, then no recompiles.

Compiling takes seconds per kernel variant on a CPU, so these are slow tests.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from tests.engine.helpers import quiet, tiny_config

from medspikeformer.engine.step import Callback
from medspikeformer.engine.trainer import train
from medspikeformer.neurons.lif import LIFNeuron, lif_forward_kernel
from tiny_models import SMALL_MSF

pytestmark = pytest.mark.slow


def _compiled_frames() -> int:
    """Frames Dynamo has compiled so far in this process (every recompile adds one)."""
    return int(torch._dynamo.utils.counters["frames"]["total"])


class _FramesPerEpoch(Callback):
    def __init__(self) -> None:
        self.frames: list[int] = []

    def on_epoch_end(self, epoch: int, row) -> None:
        self.frames.append(_compiled_frames())


def test_training_compiles_the_lif_once_then_never_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch._dynamo.reset()
    start = _compiled_frames()  # Dynamo's counters are per process, not reset with it
    probe = _FramesPerEpoch()
    # 10 training images in batches of 4 (a last batch of 2), validation at batch 4 under
    # no_grad: the shapes and both membrane modes a real run meets.
    cfg = tiny_config(
        tmp_path / "run",
        model={"name": "medspikeformer", **SMALL_MSF, "compile_neurons": True},
        data={"options": {"num_samples": 16}, "split_spec": "60/20/20"},
        train={"epochs": 3, "batch_size": 4, "progress": False},
    )
    with caplog.at_level(logging.WARNING):
        train(cfg, log=quiet, callbacks=[probe])
    probe.frames = [n - start for n in probe.frames]
    assert len(probe.frames) == 3 and probe.frames[0] > 0, probe.frames
    assert probe.frames[1] == probe.frames[0] == probe.frames[2], (
        f"compiled frames after each epoch {probe.frames}: epochs 2–3 recompiled"
    )
    assert not [r for r in caplog.records if "recompile" in r.getMessage()]
    # one program per kernel and membrane mode (train forward, eval forward, backward), not one
    # per layer shape or stride
    assert probe.frames[0] <= 3, f"{probe.frames[0]} compiled LIF frames for one float32 run"


@pytest.mark.parametrize("vth", [1.0, 0.5, 0.3])
def test_compiled_lif_equals_eager_for_any_threshold(vth: float) -> None:
    """One compiled kernel serves every threshold (τ, V_th are traced as symbols): each one's
    spikes equal the eager kernel's, including a threshold met after another was compiled."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    warm = LIFNeuron(v_threshold=1.0, backend="fused")  # compiled first for another threshold
    with torch.no_grad():
        warm(torch.randn(4, 3, 7, 5))
    lif = LIFNeuron(v_threshold=vth, backend="fused")
    for shape in [(4, 3, 7, 5), (4, 2, 30, 70, 50)]:
        x = torch.randn(*shape) * 1.2 + 0.4
        with torch.no_grad():
            assert torch.equal(lif(x), lif_forward_kernel(x, 2.0, vth, False)[0])
        xg = x.clone().requires_grad_(True)
        assert torch.equal(lif(xg).detach(), lif_forward_kernel(x, 2.0, vth, False)[0])
        # a non-contiguous view (channels-last-like permutation) gives the same spikes
        xt = x.transpose(-1, -2)
        with torch.no_grad():
            assert torch.equal(lif(xt), lif_forward_kernel(xt.contiguous(), 2.0, vth, False)[0])


def test_training_with_the_compiled_lif_equals_eager_training(tmp_path: Path) -> None:
    """Two epochs at V_th = 0.5 (the CPU recipe's threshold) give bit-identical weights with the
    compiled and the eager LIF; the compiled kernels once reset such neurons by 1 instead."""
    torch._dynamo.reset()
    weights = {}
    for compiled in (True, False):
        cfg = tiny_config(
            tmp_path / f"run-{compiled}",
            model={
                "name": "medspikeformer",
                **SMALL_MSF,
                "v_threshold": 0.5,
                "compile_neurons": compiled,
            },
            data={"options": {"num_samples": 12}},
            train={"epochs": 2, "batch_size": 4, "progress": False},
        )
        train(cfg, log=quiet)
        ckpt = torch.load(tmp_path / f"run-{compiled}" / "last.pt", weights_only=True)
        weights[compiled] = ckpt["state_dict"]
    for key, value in weights[False].items():
        assert torch.equal(weights[True][key], value), key


def test_compiled_bf16_lif_equals_eager() -> None:
    """bf16 (autocast): Inductor keeps the recursion's intermediates in fp32 unless told to round
    them as eager does; the compiled kernel must give eager's spikes bit for bit (GPU and CPU
    training must not differ by backend)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    x = (torch.randn(4, 2, 16, 32, 32) * 1.5).to(torch.bfloat16)
    lif = LIFNeuron(backend="fused")
    xg = x.clone().requires_grad_(True)
    out = lif(xg)
    assert lif._kernels.compiled
    assert torch.equal(out.detach(), lif_forward_kernel(x, 2.0, 1.0, False)[0])
    with torch.no_grad():
        assert torch.equal(lif(x), lif_forward_kernel(x, 2.0, 1.0, False)[0])
