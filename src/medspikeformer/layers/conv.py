"""Convolution layers of the spiking network and its ANN twin: ``ConvBN`` and the Spike
Convolution ``SpikeConv`` (LIF → conv → BN), with the activation chosen by ``spiking``."""

from __future__ import annotations

import torch
from torch import nn

from medspikeformer.layers.spike_conv import SpikeSavingConv2d
from medspikeformer.layers.time import seq_apply
from medspikeformer.neurons import ANNActivation, create_neuron


def make_activation(spiking: bool, neuron: dict) -> nn.Module:
    """The nonlinearity before every synaptic layer: the spec's neuron (spiking; LIF or I-LIF,
    :func:`~medspikeformer.neurons.create_neuron`) or ReLU (ANN twin)."""
    return create_neuron(neuron) if spiking else ANNActivation()


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
