"""Twin initialisation: start a spiking model from the weights of its trained ANN twin.

The twin (:meth:`MedSpikeFormer.twin_config`) has the spiking model's layers with ReLU for every
neuron and softmax attention for the spiking attention; an integer neuron is a clipped, rounded
ReLU, so the convolutions and BatchNorms of a trained twin are a sound start for the spiking
model. Every tensor whose name and shape match is copied; the attention blocks (another kind of
block in the twin: never copied, even where a name and shape coincide) and anything else keep
their fresh initialisation — except that each attention block the
twin has no counterpart for starts as the identity of its residual (Eq. 10: f_e = Attn(f) + f): the
γ of its last BatchNorm is 0, so Attn(f) = 0 and the converted network opens as the twin without
its attention, not the twin plus the output of an untrained block (the "zero-γ" start of residual
branches). γ gets gradients from the first step, so the attention still learns.
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
    identity: tuple[str, ...] = ()  # attention blocks started as the identity of their residual

    def summary(self) -> str:
        text = f"{len(self.copied)} of {len(self.copied) + len(self.kept)} tensors from the twin"
        if self.identity:
            text += f"; {len(self.identity)} attention blocks start as identity"
        return text


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
            # the twin's softmax attention is another kind of block: a tensor of it whose name and
            # shape happen to match (the output projection of sdt / qk) means something else
            theirs = None if name.startswith("attn.") else twin_state.get(name)
            if theirs is not None and theirs.shape == tensor.shape:
                tensor.copy_(theirs)
                copied.append(name)
            else:
                kept.append(name)
    identity = start_new_blocks_as_identity(student, copied)
    if not any(n.endswith("conv.weight") for n in copied):
        raise CheckpointError(
            f"{source}: no layer of it fits the model; is it the model's ANN twin?"
        )
    return TwinTransfer(tuple(copied), tuple(kept), identity)


def start_new_blocks_as_identity(student: nn.Module, copied: list[str]) -> tuple[str, ...]:
    """Zero the γ of the last BatchNorm of every attention block ``attn.<i>`` (MedSpikeFormer's
    residual attention branches) of which no tensor came from the twin; returns their names."""
    blocks = getattr(student, "attn", None)
    if not isinstance(blocks, nn.ModuleList):
        return ()
    started = []
    for index, block in enumerate(blocks):
        name = f"attn.{index}"
        if any(c.startswith(name + ".") for c in copied):
            continue  # the twin had this block: it keeps the twin's weights
        norms = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms and norms[-1].weight is not None:
            with torch.no_grad():
                norms[-1].weight.zero_()
            started.append(name)
    return tuple(started)
