"""Tracing one eval forward pass for the profiler: which modules ran, what every synaptic layer
and spiking neuron saw, the FLOPs per module and the matrix products issued outside modules.

:func:`trace_forward` only records; ``summary.py`` turns a :class:`ForwardTrace` into MACs,
SOPs and energy (conventions in ``analysis/profile.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from medspikeformer.analysis.hooks import (
    SYNAPTIC_TYPES,
    InputStats,
    is_spike_tensor,
    watch_synaptic_inputs,
)
from medspikeformer.analysis.report import synaptic_operations

_MATMUL_OPS = {"mm": (0, 1), "bmm": (0, 1), "addmm": (1, 2), "baddbmm": (1, 2)}


def _matmul_macs(a: Tensor, b: Tensor) -> int:
    """MACs of ``a @ b`` for 2-D (``[m,k]·[k,n]``) or batched 3-D operands."""
    batch = a.shape[0] if a.dim() == 3 else 1
    return int(batch * a.shape[-2] * a.shape[-1] * b.shape[-1])


class _MatmulTracer(TorchDispatchMode):
    """Records matrix products issued outside synaptic modules, with their operands' spikiness."""

    def __init__(
        self, module_stack: list[str], synaptic_depth: list[int], order: dict[Any, int]
    ) -> None:
        super().__init__()
        self.module_stack = module_stack
        self.synaptic_depth = synaptic_depth
        self.order = order
        # (module name, op) -> [calls, macs, sops, macs without a spike operand]
        self.records: dict[tuple[str, str], list[float]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        op = func.overloadpacket.__name__
        if self.synaptic_depth[0] == 0 and op in _MATMUL_OPS:
            ia, ib = _MATMUL_OPS[op]
            a, b = args[ia], args[ib]
            macs = _matmul_macs(a, b)
            rates = [float(t.double().mean()) for t in (a, b) if is_spike_tensor(t)]
            owner = self.module_stack[-1] if self.module_stack else ""
            self.order.setdefault(("matmul", owner, op), len(self.order))
            rec = self.records.setdefault((owner, op), [0, 0, 0.0, 0])
            rec[0] += 1
            rec[1] += macs
            if rates:
                rec[2] += synaptic_operations(min(rates), macs)
            else:
                rec[3] += macs
        return out


def _cpu_sdpa_flops(q_shape, k_shape, v_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """FLOPs of fused attention ``softmax(Q Kᵀ) V``: ``2·B·H·L·S·(E + E_v)`` (two matmuls)."""
    b, h, n_q, e = q_shape
    s, ev = k_shape[-2], v_shape[-1]
    return 2 * b * h * n_q * s * (e + ev)


def _cpu_sdpa_backward_flops(
    grad_shape, q_shape, k_shape, v_shape, *args: Any, out_shape=None, **kwargs: Any
) -> int:
    """Backward of fused attention: dV, dP, dQ, dK — four matmuls, ``4·B·H·L·S·(E + E_v)``."""
    return 2 * _cpu_sdpa_flops(q_shape, k_shape, v_shape)


def flop_counter_mode(display: bool = False):
    """``torch.utils.flop_counter.FlopCounterMode`` that also counts the CPU fused attention.

    PyTorch's counter has formulas for the CUDA flash/efficient attention kernels but not for
    ``aten._scaled_dot_product_flash_attention_for_cpu`` (and its backward), which
    ``F.scaled_dot_product_attention`` uses on the CPU: without these entries the ANN twin's
    attention would count as zero FLOPs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
    }
    return FlopCounterMode(display=display, custom_mapping=mapping)


@dataclass
class ForwardTrace:
    """What :func:`trace_forward` recorded (counts for the whole batch and all timesteps).

    Attributes:
        ran: names of the modules that ran.
        layers: synaptic layer name → its input statistics (first-call order).
        neurons: spiking layer name → ``[sum of output spikes, output elements]``.
        matmuls: ``(owner module, op)`` → ``[calls, MACs, SOPs, MACs without a spike operand]``.
        order: first-call order of ``("layer", name)`` and ``("matmul", owner, op)``.
        flops_by_module: FlopCounterMode's per-module counts; ``total_flops`` their total.
    """

    ran: set[str]
    layers: dict[str, InputStats]
    neurons: dict[str, list[float]]
    matmuls: dict[tuple[str, str], list[float]]
    order: dict[Any, int]
    flops_by_module: dict[str, dict[Any, int]] = field(default_factory=dict)
    total_flops: int = 0


def trace_forward(
    model: nn.Module, x: Tensor, neuron_types: tuple[type[nn.Module], ...]
) -> ForwardTrace:
    """Run ``model(x)`` once in eval mode under ``no_grad`` with every hook and counter attached;
    the model's training flag is restored and the hooks removed afterwards."""
    names = {id(m): n for n, m in model.named_modules()}
    ran: set[str] = set()
    layer_stats: dict[str, InputStats] = {}
    neuron_sums: dict[str, list[float]] = {}
    module_stack: list[str] = []
    synaptic_depth = [0]
    order: dict[Any, int] = {}  # first-call order of layers and traced products

    def enter(mod: nn.Module, args: Any) -> None:
        name = names[id(mod)]
        ran.add(name)
        module_stack.append(name)

    def leave(mod: nn.Module, args: Any, out: Any) -> None:
        module_stack.pop()

    def synaptic_call(name: str) -> None:
        synaptic_depth[0] += 1
        order.setdefault(("layer", name), len(order))

    def synaptic_post(mod: nn.Module, args: Any, out: Any) -> None:
        synaptic_depth[0] -= 1

    def neuron_post(mod: nn.Module, args: Any, out: Any) -> None:
        if isinstance(out, Tensor):
            acc = neuron_sums.setdefault(names[id(mod)], [0.0, 0])
            acc[0] += float(out.double().sum())
            acc[1] += out.numel()

    handles = []
    was_training = model.training
    model.eval()
    try:
        for mod in model.modules():
            handles.append(mod.register_forward_pre_hook(enter))
            handles.append(mod.register_forward_hook(leave))
            if isinstance(mod, SYNAPTIC_TYPES):
                handles.append(mod.register_forward_hook(synaptic_post))
            if isinstance(mod, neuron_types):
                handles.append(mod.register_forward_hook(neuron_post))
        handles += watch_synaptic_inputs(model, layer_stats, on_call=synaptic_call)
        counter = flop_counter_mode()
        tracer = _MatmulTracer(module_stack, synaptic_depth, order)
        with torch.no_grad(), counter, tracer:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return ForwardTrace(
        ran=ran,
        layers=layer_stats,
        neurons=neuron_sums,
        matmuls=tracer.records,
        order=order,
        flops_by_module=counter.get_flop_counts(),
        total_flops=int(counter.get_total_flops()),
    )
