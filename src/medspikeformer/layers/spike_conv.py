"""Memory-lean convolution for spike inputs: saves the input spikes as ``uint8`` for backward.

A convolution's backward needs its input to form the weight gradient. After a LIF that input is a
float32 tensor of 0/1 spikes, so autograd keeps 4 bytes per element where 1 bit of information
(1 byte as ``uint8``; an integer neuron's counts fit too) suffices. :func:`spike_conv2d` computes
the same ``F.conv2d`` forward, saves ``spikes.to(uint8)`` and, in backward, turns it back into the
float tensor and calls the same
``aten.convolution_backward`` kernel autograd would call — gradients are bit-identical.

:class:`SpikeSavingConv2d` is a drop-in ``nn.Conv2d`` (same parameters, same ``state_dict``) that
takes this path whenever autograd is recording. Its input must be spikes — the caller's promise
(every conv after a LIF); ``strict=True`` checks it at run time (one extra pass; for tests).

Under autocast, :func:`spike_conv2d` casts spikes, weight and bias to the autocast dtype *before*
the custom function (exactly what autocast does for ``F.conv2d``) and runs the function with
autocast off. Inside, forward and backward therefore see one dtype: letting autocast cast only the
forward's ``F.conv2d`` left backward with a bf16 gradient and the float32 weight
(``convolution_backward`` refused it). The weight's cast is an ordinary autograd op, so its
gradient arrives in the parameter's float32. 0/1 spikes are exact in bf16 and fp16.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medspikeformer.precision import active_autocast_dtype


class _SpikeConv2dFunction(torch.autograd.Function):
    """``F.conv2d`` whose saved input is the ``uint8`` copy of a spike tensor (0/1, or integer
    counts up to 255 from an integer neuron)."""

    @staticmethod
    def forward(
        ctx: Any,
        spikes: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        groups: int,
    ) -> torch.Tensor:
        out = F.conv2d(spikes, weight, bias, stride, padding, dilation, groups)
        ctx.save_for_backward(spikes.to(torch.uint8), weight)
        ctx.conf = (stride, padding, dilation, groups, bias is not None, spikes.dtype)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):
        packed, weight = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias, dtype = ctx.conf
        spikes = packed.to(dtype)
        # The engine hands back a gradient of the output's dtype; a caller that called backward
        # on a cast of it must still meet the one dtype convolution_backward takes.
        grad_out = grad_out.to(weight.dtype)
        mask = [
            ctx.needs_input_grad[0],
            ctx.needs_input_grad[1],
            has_bias and ctx.needs_input_grad[2],
        ]
        grad_in, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            spikes,
            weight,
            [weight.shape[0]] if has_bias else None,
            list(stride),
            list(padding),
            list(dilation),
            False,
            [0, 0],
            groups,
            mask,
        )
        return grad_in, grad_w, grad_b, None, None, None, None


def spike_conv2d(
    spikes: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv2d`` on a spike input ``[N, C_in, H, W]`` (0/1 or integer counts ≤ 255) that saves
    the input as ``uint8`` (¼ memory).

    Outside autograd (no grad needed) it is plain ``F.conv2d``. Under autocast the output has the
    autocast dtype, as ``F.conv2d``'s would (see the module docstring).
    """

    def pair(v: int | tuple[int, int]) -> tuple[int, int]:
        return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]

    needs_grad = torch.is_grad_enabled() and (
        spikes.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    if not needs_grad:
        return F.conv2d(spikes, weight, bias, stride, padding, dilation, groups)
    device_type = spikes.device.type
    cast = active_autocast_dtype(device_type)
    if cast is None:
        return _SpikeConv2dFunction.apply(
            spikes, weight, bias, pair(stride), pair(padding), pair(dilation), groups
        )
    spikes, weight = spikes.to(cast), weight.to(cast)
    bias = bias.to(cast) if bias is not None else None
    with torch.autocast(device_type, enabled=False):
        return _SpikeConv2dFunction.apply(
            spikes, weight, bias, pair(stride), pair(padding), pair(dilation), groups
        )


class SpikeSavingConv2d(nn.Conv2d):
    """``nn.Conv2d`` for spike inputs that keeps a ``uint8`` copy of its input for backward.

    Same constructor, parameters and ``state_dict`` as ``nn.Conv2d``; only ``padding_mode="zeros"``.
    ``strict=True`` raises ``ValueError`` on an input that is not spikes (for tests and debugging).
    """

    strict: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        if self.strict and not bool(((x >= 0) & (x <= 255) & (x == x.round())).all()):
            raise ValueError(
                "SpikeSavingConv2d got an input that is not spikes (0/1 or counts up to 255)"
            )
        return spike_conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
