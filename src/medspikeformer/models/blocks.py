"""Model-specific blocks of MedSpikeFormer and its ANN twin: the segmentation heads.

The generic layers these blocks used to sit beside (``ConvBN``, ``SpikeConv``, ``seq_apply``,
``upsample2x``, ``make_activation``) live in :mod:`medspikeformer.layers`; they are re-exported
here so that old imports keep working.
"""

from __future__ import annotations

import torch
from torch import nn

from medspikeformer.errors import ConfigError
from medspikeformer.layers import (
    ConvBN,
    SpikeConv,
    SpikeSavingConv2d,
    make_activation,
    seq_apply,
    upsample2x,
)

__all__ = [
    "HEADS",
    "ConvBN",
    "Head",
    "RealHead",
    "SpikeConv",
    "StageHead",
    "check_head",
    "create_head",
    "make_activation",
    "seq_apply",
    "upsample2x",
]


class Head(nn.Module):
    """Segmentation head: LIF → 1×1 conv → ``num_classes`` logit channels, mean over T, × ``gain``.

    ``[T, B, C, H, W]`` → ``[B, num_classes, H, W]`` (1 for binary segmentation). In the spiking model the conv sees 0/1 spikes, so a
    logit is bounded by the weights: ``b + Σ_c min(w_c, 0) ≤ logit ≤ b + Σ_c max(w_c, 0)``. Adam
    moves each weight by about ``lr`` per step, so with few channels and few steps the head cannot
    express a confident mask (docs/results.md, "why the spiking model learned less"). ``gain``
    (a constant, not a parameter) multiplies that bound and the head's effective step size; 1 is
    the paper's head. The ANN twin's head sees unbounded ReLU outputs and needs no gain.
    """

    def __init__(
        self,
        c_in: int,
        spiking: bool = True,
        neuron: dict | None = None,
        gain: float = 1.0,
        num_classes: int = 1,
    ) -> None:
        super().__init__()
        self.act = make_activation(spiking, dict(neuron or {}))
        conv = SpikeSavingConv2d if spiking else nn.Conv2d
        self.conv = conv(c_in, num_classes, 1)
        self.gain = float(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = seq_apply(self.conv, self.act(x)).mean(0)
        return y if self.gain == 1.0 else y * self.gain

    def extra_repr(self) -> str:
        return "" if self.gain == 1.0 else f"gain={self.gain:g}"


class RealHead(nn.Module):
    """Real-valued head (the authors' released code): mean over T of the decoder's real-valued
    ``f_s^1``, then conv3×3 → BN → conv1×1 to ``num_classes`` logits, × ``gain``.

    ``[T, B, C, H, W]`` → ``[B, num_classes, H, W]``. Its two convolutions take real values, so a
    model with this head is not spike-driven at its last two layers (the spike check lists them);
    the logits are not bounded by the weights as Eq. 12's are.
    """

    def __init__(self, c_in: int, gain: float = 1.0, num_classes: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_in, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_in)
        self.out = nn.Conv2d(c_in, num_classes, 1)
        self.gain = float(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.out(self.bn(self.conv(x.mean(0))))
        return y if self.gain == 1.0 else y * self.gain

    def extra_repr(self) -> str:
        return "" if self.gain == 1.0 else f"gain={self.gain:g}"


HEADS = ("spike", "real")
"""``model.head``: ``spike`` (Eq. 12: neuron → 1×1 conv, spike-driven) or ``real``
(:class:`RealHead`)."""


def check_head(kind: str) -> str:
    """``kind`` if it names a head, else ConfigError listing them."""
    if kind not in HEADS:
        raise ConfigError(f"unknown head {kind!r}; choose from {', '.join(HEADS)}")
    return kind


def create_head(
    kind: str,
    c_in: int,
    spiking: bool,
    neuron: dict | None,
    gain: float = 1.0,
    num_classes: int = 1,
) -> nn.Module:
    """The segmentation head ``kind`` of :data:`HEADS` for ``c_in`` decoder channels."""
    if check_head(kind) == "real":
        return RealHead(c_in, gain=gain, num_classes=num_classes)
    return Head(c_in, spiking, neuron, gain=gain, num_classes=num_classes)


class StageHead(nn.Module):
    """Stage mask head (training only): 1×1 conv on the real-valued ``f_e^i``, mean over T;
    ``[T, B, C_i, h, w]`` → ``[B, num_classes, h, w]``."""

    def __init__(self, c_in: int, num_classes: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return seq_apply(self.conv, x).mean(0)
