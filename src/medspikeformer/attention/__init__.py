"""Attention modules; all map ``[T, B, C, H, W]`` → ``[T, B, C, H, W]`` and are linear in N.

Each module file registers its attention (``@register_attention("name")``); importing this
package imports them all, so ``create_attention`` / ``list_attentions`` see every kind. A new
attention: one file with the decorated class, one import line below.
"""

from medspikeformer.attention.decomposed import (
    INTERACTIONS,
    DecomposedSpikeAttention,
    decomposed_attention,
    decomposed_attention_quadratic,
    normalise_interactions,
)
from medspikeformer.attention.qkformer import QKTokenAttention, token_summary
from medspikeformer.attention.registry import (
    AttentionSpec,
    attention_spec,
    create_attention,
    list_attentions,
    register_attention,
    unregister_attention,
)
from medspikeformer.attention.softmax import SoftmaxAttention, kv_pool_size
from medspikeformer.attention.spike_driven import SpikeDrivenAttention, kv_channel_summary
from medspikeformer.attention.spikformer import SpikingSelfAttention, spiking_self_attention

__all__ = [
    "INTERACTIONS",
    "AttentionSpec",
    "DecomposedSpikeAttention",
    "QKTokenAttention",
    "SoftmaxAttention",
    "SpikeDrivenAttention",
    "SpikingSelfAttention",
    "attention_spec",
    "create_attention",
    "decomposed_attention",
    "decomposed_attention_quadratic",
    "kv_channel_summary",
    "kv_pool_size",
    "list_attentions",
    "normalise_interactions",
    "register_attention",
    "spiking_self_attention",
    "token_summary",
    "unregister_attention",
]
