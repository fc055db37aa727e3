"""The neuron family: one place that lists the spiking neurons and builds them from options.

``model.neuron`` picks one for every neuron of a spiking model whose spikes enter a synaptic
layer (conv / linear): ``lif`` (paper Eq. 1–3, binary) or ``ilif`` (integer counts in {0..D},
``model.levels``; :mod:`medspikeformer.neurons.ilif`). Spike matrices that enter a product of two
spike tensors (the attention's Q, K, V and its token masks) are asked for with ``binary=True``
and stay LIF under either choice: Eq. 8–9 define the inactive part of a matrix as 1 − Q, which
only means "not firing" for 0/1 spikes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medspikeformer.errors import ConfigError
from medspikeformer.neurons.ilif import IntegerLIFNeuron
from medspikeformer.neurons.lif import LIFNeuron

NEURONS: dict[str, type[LIFNeuron]] = {"lif": LIFNeuron, "ilif": IntegerLIFNeuron}
"""Neuron kinds by name (``model.neuron``)."""
NEURON_OPTIONS: dict[str, tuple[str, ...]] = {
    "lif": ("tau", "v_threshold", "surrogate", "alpha", "detach_reset", "compile", "backend"),
    "ilif": ("tau", "v_threshold", "levels", "detach_reset", "compile", "backend"),
}
"""The keyword arguments each kind takes; other keys of a neuron spec are ignored."""


def check_neuron(kind: str) -> str:
    """``kind`` if it names a neuron, else ConfigError listing them."""
    if kind not in NEURONS:
        raise ConfigError(f"unknown neuron {kind!r}; choose from {', '.join(NEURONS)}")
    return kind


def create_neuron(spec: Mapping[str, Any] | None = None, *, binary: bool = False) -> LIFNeuron:
    """Build the neuron a spec describes: ``{"kind": "lif" | "ilif", **options}`` (kind
    defaults to ``lif``). ``binary=True``: this neuron's spikes must be 0/1 → always a LIF with
    the spec's LIF options."""
    spec = dict(spec or {})
    kind = "lif" if binary else check_neuron(spec.pop("kind", "lif"))
    allowed = NEURON_OPTIONS[kind]
    return NEURONS[kind](**{k: v for k, v in spec.items() if k in allowed})
