"""Building blocks shared by MedSpikeFormer and its ANN twin, in the ``[T, B, C, H, W]`` layout.

Convolutions and BatchNorm run on the time-folded view ``[T·B, C, H, W]`` (``flatten`` / ``view``,
no copies).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medspikeformer.models.spike_conv import SpikeSavingConv2d
from medspikeformer.neurons import ANNActivation, LIFNeuron


def make_activation(spiking: bool, neuron: dict) -> nn.Module:
    """The nonlinearity before every synaptic layer: LIF (spiking) or ReLU (ANN twin)."""
    return LIFNeuron(**neuron) if spiking else ANNActivation()


def seq_apply(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a per-frame module to ``[T, B, ...]`` by folding T into the batch."""
    t, b = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.view(t, b, *y.shape[1:])


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 upsampling of ``[T, B, C, h, w]`` → ``[T, B, C, 2h, 2w]``."""
    return seq_apply(lambda z: F.interpolate(z, scale_factor=2.0, mode="nearest"), x)


class ConvBN(nn.Module):
    """conv (no bias) → BN on ``[N, C, H, W]``."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class SpikeConv(nn.Module):
    """Spike Convolution (SC): LIF → conv → BN, ``[T, B, C_in, H, W]`` → ``[T, B, C_out, H', W']``.

    Membrane-shortcut style (Spike-driven Transformer v2): the conv only ever sees spikes.
    In the ANN twin the LIF is a ReLU. In the spiking model the conv is a
    :class:`SpikeSavingConv2d` (an ``nn.Conv2d`` that keeps its 0/1 input as ``bool`` for backward).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 3,
        stride: int = 1,
        spiking: bool = True,
        neuron: dict | None = None,
    ) -> None:
        super().__init__()
        self.act = make_activation(spiking, dict(neuron or {}))
        conv = SpikeSavingConv2d if spiking else nn.Conv2d
        self.conv = conv(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.act(x)
        return seq_apply(lambda z: self.bn(self.conv(z)), s)


class Head(nn.Module):
    """Segmentation head: LIF → 1×1 conv → 1 logit channel, mean over T, × ``gain``.

    ``[T, B, C, H, W]`` → ``[B, 1, H, W]``. In the spiking model the conv sees 0/1 spikes, so a
    logit is bounded by the weights: ``b + Σ_c min(w_c, 0) ≤ logit ≤ b + Σ_c max(w_c, 0)``. Adam
    moves each weight by about ``lr`` per step, so with few channels and few steps the head cannot
    express a confident mask (docs/results.md, "why the spiking model learned less"). ``gain``
    (a constant, not a parameter) multiplies that bound and the head's effective step size; 1 is
    the paper's head. The ANN twin's head sees unbounded ReLU outputs and needs no gain.
    """

    def __init__(
        self, c_in: int, spiking: bool = True, neuron: dict | None = None, gain: float = 1.0
    ) -> None:
        super().__init__()
        self.act = make_activation(spiking, dict(neuron or {}))
        self.conv = SpikeSavingConv2d(c_in, 1, 1) if spiking else nn.Conv2d(c_in, 1, 1)
        self.gain = float(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = seq_apply(self.conv, self.act(x)).mean(0)
        return y if self.gain == 1.0 else y * self.gain

    def extra_repr(self) -> str:
        return "" if self.gain == 1.0 else f"gain={self.gain:g}"


class StageHead(nn.Module):
    """Stage mask head (training only): 1×1 conv on the real-valued ``f_e^i``, mean over T."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return seq_apply(self.conv, x).mean(0)
