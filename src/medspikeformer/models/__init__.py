"""Model family: registry, MedSpikeFormer (+ ablations, baselines, ANN twin), U-Net baseline.

Registered names (``list_models()``): ``medspikeformer`` and its ablations
``medspikeformer_wo_{sdsa,sc,aa,ai,ia,ii}``, the attention baselines ``ssa``, ``sdt``, ``qk``,
the ANN twin ``ann`` and MONAI's ``unet``. Every builder accepts config overrides and returns a
:class:`SegmentationModel` (the contract: ``models/base.py``). The ``medspikeformer*`` names train
with a joint ANN teacher under ``teacher.mode: auto``; the baselines without (``model_info``).
"""

from __future__ import annotations

from typing import Any

from medspikeformer.models.base import ModuleFacts, SegmentationModel, module_facts
from medspikeformer.models.medspikeformer import (
    ATTENTIONS,
    PAPER_NETWORK,
    MedSpikeFormer,
    build_teacher,
    default_config,
)
from medspikeformer.models.output import (
    ACTIVATIONS,
    SegmentationOutput,
    head_activation,
    to_labels,
    to_probabilities,
)
from medspikeformer.models.registry import (
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)
from medspikeformer.models.unet import UNetBaseline


def _msf(defaults: dict[str, Any], overrides: dict[str, Any]) -> MedSpikeFormer:
    """A MedSpikeFormer variant. The paper's ablation variants and the other papers' binary-spike
    baselines default to :data:`PAPER_NETWORK` (binary LIF); only ``medspikeformer`` itself takes
    the integer neuron by default."""
    return MedSpikeFormer(**{**defaults, **overrides})


def _without(interaction: str) -> list[str]:
    return [i for i in ("aa", "ai", "ia", "ii") if i != interaction]


@register_model(family="medspikeformer", default_teacher="joint")
def medspikeformer(**overrides: Any) -> MedSpikeFormer:
    """MedSpikeFormer with decomposed spike attention (all four interactions); integer spikes
    by default, the paper's binary LIF with ``**PAPER_NETWORK``."""
    return _msf({}, overrides)


@register_model(family="medspikeformer", default_teacher="joint")
def medspikeformer_wo_sdsa(**overrides: Any) -> MedSpikeFormer:
    """Ablation w/o SDSA: no attention, f_e = PE(x)."""
    return _msf({**PAPER_NETWORK, "attention": "none"}, overrides)


@register_model(family="medspikeformer", default_teacher="joint")
def medspikeformer_wo_sc(**overrides: Any) -> MedSpikeFormer:
    """Ablation w/o SC: no 3×3 spike conv in PE; decoder fuses with LIF → 1×1 conv → BN."""
    return _msf({**PAPER_NETWORK, "use_spike_conv": False}, overrides)


@register_model(family="medspikeformer", default_teacher="joint")
def medspikeformer_wo_aa(**overrides: Any) -> MedSpikeFormer:
    """Ablation w/o A–A interaction."""
    return _msf({**PAPER_NETWORK, "interactions": _without("aa")}, overrides)


@register_model(family="medspikeformer", default_teacher="joint")
def medspikeformer_wo_ai(**overrides: Any) -> MedSpikeFormer:
    """Ablation w/o A–I interaction."""
    return _msf({**PAPER_NETWORK, "interactions": _without("ai")}, overrides)


@register_model(family="medspikeformer", default_teacher="joint")
def medspikeformer_wo_ia(**overrides: Any) -> MedSpikeFormer:
    """Ablation w/o I–A interaction."""
    return _msf({**PAPER_NETWORK, "interactions": _without("ia")}, overrides)


@register_model(family="medspikeformer", default_teacher="joint")
def medspikeformer_wo_ii(**overrides: Any) -> MedSpikeFormer:
    """Ablation w/o I–I interaction."""
    return _msf({**PAPER_NETWORK, "interactions": _without("ii")}, overrides)


@register_model(family="medspikeformer")
def ssa(**overrides: Any) -> MedSpikeFormer:
    """Baseline: Spikformer spiking self-attention in the same encoder–decoder."""
    return _msf({**PAPER_NETWORK, "attention": "ssa"}, overrides)


@register_model(family="medspikeformer")
def sdt(**overrides: Any) -> MedSpikeFormer:
    """Baseline: Spike-driven Transformer v1 attention in the same encoder–decoder."""
    return _msf({**PAPER_NETWORK, "attention": "sdt"}, overrides)


@register_model(family="medspikeformer")
def qk(**overrides: Any) -> MedSpikeFormer:
    """Baseline: QKFormer token attention in the same encoder–decoder."""
    return _msf({**PAPER_NETWORK, "attention": "qk"}, overrides)


@register_model(family="medspikeformer")
def ann(**overrides: Any) -> MedSpikeFormer:
    """ANN twin (teacher / upper reference): ReLU instead of LIF, pooled softmax attention."""
    return _msf({"spiking": False, "attention": "softmax", "timesteps": 1}, overrides)


@register_model
def unet(**overrides: Any) -> UNetBaseline:
    """MONAI U-Net baseline (2-D, residual units), sized like MedSpikeFormer."""
    return UNetBaseline(**overrides)


__all__ = [
    "ACTIVATIONS",
    "ATTENTIONS",
    "PAPER_NETWORK",
    "MedSpikeFormer",
    "ModelInfo",
    "ModuleFacts",
    "SegmentationModel",
    "SegmentationOutput",
    "UNetBaseline",
    "build_teacher",
    "create_model",
    "default_config",
    "head_activation",
    "list_models",
    "model_info",
    "module_facts",
    "register_model",
    "to_labels",
    "to_probabilities",
]
