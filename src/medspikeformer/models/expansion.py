"""Spike-driven inference for integer spikes: each count S runs as S binary events.

An integer neuron (``model.neuron: ilif``) emits counts S ∈ {0..D}. Every synaptic layer that
receives them is linear, so ``W·S + b = Σ_k W·s_k + b`` with the binary planes ``s_k = [S > k]``
(:func:`~medspikeformer.neurons.binary_planes`, the D "virtual timesteps"): the layer can run on
0/1 spikes only, accumulating the D sub-step results before the bias is added once.
:func:`binary_expansion` makes every spike-consuming convolution of a model do exactly that —
the model then computes the integer network's logits (to float rounding) from binary events
only, and a synaptic-layer hook (the spike check, the profiler) sees each binary plane as one
call: a count of 3 is three synaptic events, never one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from medspikeformer.layers import SpikeSavingConv2d
from medspikeformer.neurons import binary_planes


class ExpandedConv(nn.Module):
    """A spike-consuming conv run over the binary planes of its integer input.

    ``synapse`` is the original layer (its parameters, unchanged), called once per non-empty
    plane without its bias; the bias is added once. A 0/1 input is one plane: the layer as it was.
    """

    def __init__(self, synapse: nn.Conv2d) -> None:
        super().__init__()
        self.synapse = synapse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = int(x.max().item()) if x.numel() else 0
        if levels <= 1:
            return self.synapse(x)
        bias = self.synapse.bias
        self.synapse.bias = None
        try:
            planes = binary_planes(x, levels)
            out = self.synapse(planes[0])
            for plane in planes[1:]:
                out = out + self.synapse(plane)
        finally:
            self.synapse.bias = bias
        return out if bias is None else out + bias.view(1, -1, 1, 1)


@contextmanager
def binary_expansion(model: nn.Module) -> Iterator[int]:
    """Inside the block every :class:`SpikeSavingConv2d` of ``model`` (the convs after a neuron)
    runs as an :class:`ExpandedConv`; the model is restored on exit. Yields how many layers were
    expanded. For inference (under ``no_grad``)."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SpikeSavingConv2d):
                swapped.append((parent, name, child))
                setattr(parent, name, ExpandedConv(child))
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
