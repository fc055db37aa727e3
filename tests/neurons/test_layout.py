"""Spikes keep the layout of their input: channels-last frames stay channels-last through every
neuron and backend (a convolution in channels-last then never converts at each spike layer), with
the same spikes and gradients as the contiguous layout."""

from __future__ import annotations

import pytest
import torch

from medspikeformer.layers.time import fold, unfold
from medspikeformer.neurons import IntegerLIFNeuron, LIFNeuron
from medspikeformer.neurons.lif import memory_order

NEURONS = {"lif": lambda b: LIFNeuron(backend=b), "ilif": lambda b: IntegerLIFNeuron(backend=b)}


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, C, H, W]`` whose frames are channels-last (as a channels-last conv returns them)."""
    return unfold(fold(x).contiguous(memory_format=torch.channels_last), x.shape[0])


def test_memory_order_reads_the_layout() -> None:
    x = torch.randn(2, 3, 4, 5, 6)
    assert memory_order(x) == [0, 1, 2, 3, 4]
    assert memory_order(_channels_last(x)) == [0, 1, 3, 4, 2]


@pytest.mark.parametrize(
    "backend", ["eager", "unrolled", pytest.param("fused", marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("kind", sorted(NEURONS))
def test_spikes_keep_channels_last_with_the_same_values_and_gradients(
    kind: str, backend: str
) -> None:
    torch.manual_seed(0)
    base = torch.randn(2, 2, 4, 5, 6) * 2
    a = base.clone().requires_grad_(True)
    b = _channels_last(base.clone()).requires_grad_(True)
    assert fold(b).is_contiguous(memory_format=torch.channels_last)
    neuron = NEURONS[kind](backend)
    sa, sb = neuron(a), neuron(b)
    assert fold(sb).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(sa, sb)
    weight = torch.randn_like(base)
    (sa * weight).sum().backward()
    (sb * weight).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)
