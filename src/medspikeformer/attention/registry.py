"""Attention registry (timm style): ``register_attention``, ``create_attention``, ``list_attentions``.

A new attention is one file and one line: decorate its module class (or a builder function) with
``@register_attention("name")`` and import the file in ``attention/__init__.py``; then
``create_model("medspikeformer", attention="name")`` builds it in every encoder unit.

Every builder is called as ``builder(dim, num_heads, neuron=neuron, **options)``:
``dim`` the unit's channel width C, ``num_heads`` its head count (dividing C), ``neuron`` the LIF
keyword arguments (``tau``, ``v_threshold``, …; ignored by real-valued attentions) and
``options`` the model options the registration names (e.g. ``interactions``, ``n_kv``). The module
maps ``[T, B, C, H, W]`` → ``[T, B, C, H, W]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from medspikeformer.errors import ConfigError

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class AttentionSpec:
    """One registered attention.

    Attributes:
        name: the ``attention`` option value.
        builder: ``builder(dim, num_heads, neuron=..., **options) -> nn.Module``.
        spiking: ``True`` for spike attention (spiking models only), ``False`` for real-valued
            attention (the ANN twin only), ``None`` for both (``"none"``).
        options: model option names passed on as keyword arguments.
    """

    name: str
    builder: Callable[..., nn.Module]
    spiking: bool | None = True
    options: tuple[str, ...] = ()


_REGISTRY: dict[str, AttentionSpec] = {}


def register_attention(
    name: str, *, spiking: bool | None = True, options: tuple[str, ...] = ()
) -> Callable[[Builder], Builder]:
    """Decorator: register a class or builder under ``name`` (see the module doc for the call)."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"attention {name!r} is registered twice")
        _REGISTRY[name] = AttentionSpec(name, builder, spiking, tuple(options))
        return builder

    return decorate


def unregister_attention(name: str) -> None:
    """Remove a registration (for tests that register a temporary attention)."""
    _REGISTRY.pop(name, None)


def list_attentions() -> list[str]:
    """Names of all registered attentions, sorted."""
    return sorted(_REGISTRY)


def attention_spec(kind: str) -> AttentionSpec:
    """The registration of ``kind``; ``ConfigError`` (one line, the known kinds) if unknown."""
    try:
        return _REGISTRY[kind]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown attention {kind!r}; choose from {list_attentions()}") from None


def create_attention(
    kind: str, dim: int, heads: int, neuron: dict | None = None, **options: Any
) -> nn.Module:
    """Build the attention ``kind`` for width ``dim`` with ``heads`` heads.

    ``neuron``: LIF keyword arguments; ``options``: the attention's own options (those named at
    registration; the model passes exactly those).
    """
    return attention_spec(kind).builder(dim, heads, neuron=dict(neuron or {}), **options)


@register_attention("none", spiking=None)
def no_attention(dim: int, num_heads: int, neuron: dict | None = None) -> nn.Module:
    """No attention (ablation w/o SDSA): the identity, ``f_e = PE(x)``."""
    return nn.Identity()
