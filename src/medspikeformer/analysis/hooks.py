"""The one synaptic-input hook of the analysis tools: what each conv / linear layer receives.

:func:`watch_synaptic_inputs` hooks every synaptic layer (``Conv*d``, ``ConvTranspose*d``,
``Linear``) of a model and accumulates an :class:`InputStats` per layer: are the inputs spikes
(0/1) or spike counts (non-negative integers), their range, sum and non-zero fraction. The spike
check (``spike_check.py``) and the profiler's trace (``trace.py``) both read it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

SYNAPTIC_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def is_spike_tensor(x: Tensor) -> bool:
    """True when every entry is a non-negative integer (binary spikes or spike counts)."""
    if not x.is_floating_point():
        return bool((x >= 0).all())
    return bool(((x >= 0) & (x == torch.round(x))).all())


def first_tensor(args: Sequence[Any]) -> Tensor | None:
    """The first tensor among a hook's positional ``args`` (a layer's input), or None."""
    for a in args:
        if isinstance(a, Tensor):
            return a
    return None


@dataclass
class InputStats:
    """What one synaptic layer received over all its calls in a pass."""

    calls: int = 0
    binary: bool = True  # every input value in {0, 1}
    counts: bool = True  # every input value a finite non-negative integer
    min: float = float("inf")
    max: float = float("-inf")
    total: float = 0.0  # sum of all input values (float64)
    numel: int = 0
    nonzero: float = 0.0  # mean over calls of the fraction of non-zero inputs

    def update(self, inp: Tensor | None) -> None:
        """Count one call with input ``inp`` (``None``: a call without a tensor input)."""
        n = self.calls
        self.calls += 1
        if inp is None:
            return
        inp = inp.detach()
        finite = torch.isfinite(inp).all().item()
        is_int = finite and bool(torch.equal(inp, inp.round()))
        self.binary &= bool(is_int and ((inp == 0) | (inp == 1)).all().item())
        self.counts &= bool(is_int and (inp >= 0).all().item())
        self.min = min(self.min, inp.min().item())
        self.max = max(self.max, inp.max().item())
        self.total += float(inp.double().sum())
        self.numel += inp.numel()
        self.nonzero = (self.nonzero * n + (inp != 0).float().mean().item()) / (n + 1)

    @property
    def mean(self) -> float:
        """Mean input value: the input firing rate when the inputs are spikes."""
        return self.total / self.numel if self.numel else 0.0


def watch_synaptic_inputs(
    model: nn.Module,
    stats: dict[str, InputStats],
    on_call: Callable[[str], None] | None = None,
) -> list[RemovableHandle]:
    """Hook every synaptic layer of ``model``: each call updates ``stats[name]`` (created on the
    first call, so ``stats`` lists the layers in execution order) and then calls
    ``on_call(name)``. Returns the handles; remove them when done."""
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, SYNAPTIC_TYPES):

            def hook(_mod: nn.Module, args: Any, name: str = name) -> None:
                stats.setdefault(name, InputStats()).update(first_tensor(args))
                if on_call is not None:
                    on_call(name)

            handles.append(module.register_forward_pre_hook(hook))
    return handles
