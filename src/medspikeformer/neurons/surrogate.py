"""Surrogate gradients for the Heaviside step Θ of Eq. 2.

Forward is always the Heaviside step with Θ(0) = 1 (``x >= 0``, as spikingjelly's ``heaviside``);
backward replaces Θ'(x) by a smooth bump. The formulas are the same as spikingjelly 2.0 so that
gradients match its ``LIFNode`` to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from medspikeformer.errors import ConfigError

SurrogateGrad = Callable[[torch.Tensor, float], torch.Tensor]


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Θ(x) = 1 if x >= 0 else 0, in the dtype of ``x`` (Eq. 2)."""
    return (x >= 0).to(x.dtype)


def atan_grad(x: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """ATan surrogate derivative: (α/2) / (1 + (π/2 · α · x)²).

    Derivative of (1/π)·arctan(π/2·α·x) + 1/2; default α = 2.
    """
    a = alpha / 2
    ax = math.pi * a * x
    return a / (1 + ax * ax)


def sigmoid_grad(x: torch.Tensor, alpha: float = 4.0) -> torch.Tensor:
    """Sigmoid surrogate derivative: α · σ(αx) · (1 − σ(αx)); default α = 4."""
    s = torch.sigmoid(x * alpha)
    return (1 - s) * s * alpha


SURROGATES: dict[str, tuple[SurrogateGrad, float]] = {
    "atan": (atan_grad, 2.0),
    "sigmoid": (sigmoid_grad, 4.0),
}


def get_surrogate(name: str) -> tuple[SurrogateGrad, float]:
    """Return ``(grad_fn, default_alpha)`` for a surrogate name; unknown → ``ConfigError``."""
    try:
        return SURROGATES[name]
    except KeyError:
        raise ConfigError(
            f"unknown surrogate {name!r}; known: {', '.join(sorted(SURROGATES))}"
        ) from None
