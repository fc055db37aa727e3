"""Twin initialisation: start a spiking model from the weights of its trained ANN twin.

The twin (:meth:`MedSpikeFormer.twin_config`) has the spiking model's layers with ReLU for every
neuron and softmax attention for the spiking attention; an integer neuron is a clipped, rounded
ReLU, so the convolutions and BatchNorms of a trained twin are a sound start for the spiking
model. Every tensor whose name and shape match is copied; the attention blocks (different
modules) and anything else keep their fresh initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from medspikeformer.errors import CheckpointError


@dataclass(frozen=True)
class TwinTransfer:
    """What :func:`transfer_twin_weights` copied: tensor names copied and kept."""

    copied: tuple[str, ...]
    kept: tuple[str, ...]

    def summary(self) -> str:
        return f"{len(self.copied)} of {len(self.copied) + len(self.kept)} tensors from the twin"


def twin_matches(student: nn.Module, twin_name: str, twin_config: Mapping) -> bool:
    """Whether a checkpoint of model ``twin_name`` with ``twin_config`` is ``student``'s ANN twin
    (the options :meth:`twin_config` fixes agree)."""
    own = getattr(student, "twin_config", lambda: None)()
    if own is None or twin_name != "ann":
        return False
    return all(twin_config.get(k) == v for k, v in own.items() if k != "attention")


def transfer_twin_weights(
    student: nn.Module, twin_state: Mapping[str, torch.Tensor], *, source: str
) -> TwinTransfer:
    """Copy every tensor of ``twin_state`` whose name and shape ``student`` has; returns what was
    copied. CheckpointError when not a single convolution weight matches (not a twin)."""
    own = student.state_dict()
    copied, kept = [], []
    with torch.no_grad():
        for name, tensor in own.items():
            theirs = twin_state.get(name)
            if theirs is not None and theirs.shape == tensor.shape:
                tensor.copy_(theirs)
                copied.append(name)
            else:
                kept.append(name)
    if not any(n.endswith("conv.weight") for n in copied):
        raise CheckpointError(
            f"{source}: no layer of it fits the model; is it the model's ANN twin?"
        )
    return TwinTransfer(tuple(copied), tuple(kept))
