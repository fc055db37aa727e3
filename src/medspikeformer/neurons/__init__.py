"""Spiking neurons: the multi-step LIF of Eq. 1–3 and its surrogate gradients."""

from medspikeformer.neurons.lif import (
    LIF_BACKENDS,
    ANNActivation,
    LIFFunction,
    LIFNeuron,
    lif_backend,
    lif_multistep,
)
from medspikeformer.neurons.surrogate import atan_grad, get_surrogate, heaviside, sigmoid_grad

__all__ = [
    "LIF_BACKENDS",
    "ANNActivation",
    "LIFFunction",
    "LIFNeuron",
    "atan_grad",
    "get_surrogate",
    "heaviside",
    "lif_backend",
    "lif_multistep",
    "sigmoid_grad",
]
