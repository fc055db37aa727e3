"""Spiking neurons: the multi-step LIF of Eq. 1–3, the integer LIF, their registry and surrogate
gradients."""

from medspikeformer.neurons.ilif import IntegerLIFNeuron, binary_planes
from medspikeformer.neurons.lif import (
    LIF_BACKENDS,
    ANNActivation,
    LIFFunction,
    LIFNeuron,
    lif_backend,
    lif_multistep,
)
from medspikeformer.neurons.registry import NEURONS, check_neuron, create_neuron
from medspikeformer.neurons.surrogate import atan_grad, get_surrogate, heaviside, sigmoid_grad

__all__ = [
    "LIF_BACKENDS",
    "NEURONS",
    "ANNActivation",
    "IntegerLIFNeuron",
    "LIFFunction",
    "LIFNeuron",
    "atan_grad",
    "binary_planes",
    "check_neuron",
    "create_neuron",
    "get_surrogate",
    "heaviside",
    "lif_backend",
    "lif_multistep",
    "sigmoid_grad",
]
