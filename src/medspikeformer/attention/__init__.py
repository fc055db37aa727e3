"""Attention modules; all map ``[T, B, C, H, W]`` → ``[T, B, C, H, W]`` and are linear in N."""

from medspikeformer.attention.decomposed import (
    INTERACTIONS,
    DecomposedSpikeAttention,
    decomposed_attention,
    decomposed_attention_quadratic,
    normalise_interactions,
)
from medspikeformer.attention.qkformer import QKTokenAttention, token_summary
from medspikeformer.attention.softmax import SoftmaxAttention, kv_pool_size
from medspikeformer.attention.spike_driven import SpikeDrivenAttention, kv_channel_summary
from medspikeformer.attention.spikformer import SpikingSelfAttention, spiking_self_attention

__all__ = [
    "INTERACTIONS",
    "DecomposedSpikeAttention",
    "QKTokenAttention",
    "SoftmaxAttention",
    "SpikeDrivenAttention",
    "SpikingSelfAttention",
    "decomposed_attention",
    "decomposed_attention_quadratic",
    "kv_channel_summary",
    "kv_pool_size",
    "normalise_interactions",
    "spiking_self_attention",
    "token_summary",
]
