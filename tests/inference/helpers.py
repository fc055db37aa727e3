"""Helpers for the inference tests: a pointwise model and tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tiny_models import SMALL_MSF

TINY = SMALL_MSF
SIZE = 32


class PointwiseModel(nn.Module):
    """A 1×1-conv "segmenter": each output pixel depends on its own input pixel only.

    Its output is flip-equivariant and independent of tiling, so sliding windows, blocks, padding
    and TTA must reproduce the direct forward exactly — which lets tests check their indexing.
    ``size_divisor`` makes the padding path run.
    """

    model_name = "pointwise"
    is_spiking = False
    timesteps = 1

    def __init__(self, in_channels: int = 3, size_divisor: int = 8) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "size_divisor": size_divisor}
        self.in_channels = in_channels
        self.size_divisor = size_divisor
        self.conv = nn.Conv2d(in_channels, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(4.0)
            self.conv.bias.fill_(-6.0 * in_channels / 3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise ValueError(f"{h}×{w} not a multiple of {self.size_divisor}")
        return self.conv(x)


def calibrate(model: nn.Module, size: int = SIZE, steps: int = 4, seed: int = 0) -> nn.Module:
    """Set BatchNorm running statistics from a few random batches (cumulative average), so that
    in eval mode the tiny untrained model's neurons fire (~10–35 %) and its output depends on the
    input — otherwise an untrained spiking net is silent and every comparison is vacuous."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.rand(4, model.in_channels, size, size, generator=gen))
    return model.eval()


def make_checkpoint(
    folder: Path,
    name: str = "best.pt",
    size: int = SIZE,
    dataset: str = "synthetic",
    with_teacher: bool = False,
    seed: int = 0,
) -> Path:
    """A tiny medspikeformer checkpoint with the documented payload (and a teacher in last.pt)."""
    from medspikeformer import create_model
    from medspikeformer.engine.checkpoint import build_payload, save_checkpoint
    from medspikeformer.models import build_teacher

    torch.manual_seed(seed)
    model = calibrate(create_model("medspikeformer", **TINY))
    train_config = {
        "data": {"dataset": dataset, "size": size, "options": {"num_samples": 10}},
        "train": {"seed": 41, "threshold": 0.5},
    }
    payload = build_payload(model, epoch=2, metrics={"miou": 0.1}, train_config=train_config)
    path = save_checkpoint(folder / name, payload)
    if with_teacher:
        teacher = build_teacher(model)
        last = dict(payload)
        last["resume"] = {
            "teacher_state_dict": {k: v.clone() for k, v in teacher.state_dict().items()}
        }
        save_checkpoint(folder / "last.pt", last)
    return path
