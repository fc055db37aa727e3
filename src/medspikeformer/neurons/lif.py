"""Multi-step leaky integrate-and-fire neuron (paper Eq. 1–3).

Layout ``[T, B, ...]`` (time first, spikingjelly's multi-step mode). Per element and timestep:

    U[t] = H[t-1] + X[t]                      (Eq. 1, charge; H[-1] = 0)
    S[t] = Θ(U[t] − V_th),  Θ(0) = 1          (Eq. 2, fire)
    H[t] = β (U[t] − V_th · S[t]),  β = 1 − 1/τ   (Eq. 3, soft reset then leak)

With ``V_th = 1`` this is Eq. 3 literally; for other thresholds the soft reset subtracts ``V_th``
(spikingjelly's ``v_reset=None``). It equals spikingjelly's
``LIFNode(tau, decay_input=False, v_reset=None, step_mode='m')``; the leak is computed as
``h − h/τ`` like spikingjelly so that spikes agree bit for bit.

The time loop lives inside one ``torch.autograd.Function``: forward keeps only the membrane
``U`` (one tensor the size of the input), backward runs the time recursion in reverse. No autograd
graph of ``T`` small ops is built, which keeps training memory to one saved tensor per neuron layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from medspikeformer.errors import ConfigError
from medspikeformer.neurons.surrogate import SurrogateGrad, get_surrogate

log = logging.getLogger(__name__)


def soft_reset_forward(
    x: torch.Tensor,
    tau: float,
    v_threshold: float,
    keep_membrane: bool,
    fire_into: Callable[[torch.Tensor, torch.Tensor], object],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The time loop every neuron here shares, eagerly: ``U = X[t] + β·H`` (charge, with the leak),
    ``S = fire(U)`` (``fire_into(U, out)`` writes it), ``H = U − V_th·S`` (soft reset).

    ``x``: ``[T, ...]`` → spikes ``[T, ...]`` and, if asked, the membrane ``U`` before firing.
    Preallocated ``out=`` buffers, no allocation inside the loop.
    """
    beta = 1.0 - 1.0 / tau
    steps = x.shape[0]
    spikes = torch.empty_like(x)  # x's layout (channels-last frames stay channels-last)
    membrane = torch.empty_like(spikes) if keep_membrane else None
    u_buf = None if keep_membrane else torch.empty_like(spikes[0])
    h = torch.empty_like(spikes[0])
    for t in range(steps):
        u = membrane[t] if membrane is not None else u_buf
        if t == 0:
            u.copy_(x[0])  # H[-1] = 0
        else:
            torch.add(x[t], h, alpha=beta, out=u)
        fire_into(u, spikes[t])
        if t + 1 < steps:
            torch.sub(u, spikes[t], alpha=v_threshold, out=h)
    return spikes, membrane


def soft_reset_backward(
    grad_spikes: torch.Tensor,
    membrane: torch.Tensor,
    tau: float,
    v_threshold: float,
    detach_reset: bool,
    slope: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Reverse-time recursion of :func:`soft_reset_forward` for dL/dX given dL/dS and the saved
    membrane ``U`` (``[T, ...]``), with g = ``slope(U[t])`` standing for ∂S/∂U:

    dL/dU[t] = dL/dS[t]·g + dL/dH[t]·(1 − V_th·g)  (reset term dropped when ``detach_reset``),
    dL/dH[t−1] = β·dL/dU[t], dL/dX[t] = dL/dU[t].
    """
    beta = 1.0 - 1.0 / tau
    grad_x = torch.empty_like(membrane)
    for t in range(membrane.shape[0] - 1, -1, -1):
        sg = slope(membrane[t])
        gu = grad_x[t]
        torch.mul(grad_spikes[t], sg, out=gu)
        if t + 1 < membrane.shape[0]:
            grad_h = grad_x[t + 1] * beta  # dL/dH[t] = β · dL/dU[t+1]
            if detach_reset:
                gu.add_(grad_h)
            else:
                gu.add_(grad_h).sub_(grad_h.mul_(sg), alpha=v_threshold)
    return grad_x


def soft_reset_forward_fused(
    x: torch.Tensor,
    tau: float,
    v_threshold: float,
    keep_membrane: bool,
    fire: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`soft_reset_forward` as pure tensor expressions, for ``torch.compile`` (run eagerly it
    gives the same bits; ``fire(U)`` returns the spikes).

    With ``T`` fixed at trace time the unrolled loop is one element-wise program; Inductor turns it
    into a single loop that reads each ``X[t]`` once and writes ``S[t]`` (and ``U[t]``) once, with
    ``H`` kept in registers — instead of the eager kernel's passes over memory per timestep.
    """
    beta = 1.0 - 1.0 / tau
    spikes, membranes = [], []
    h = None
    for t in range(x.shape[0]):
        if torch.compiler.is_compiling():
            # Plain products under the compiler: Dynamo traces a float argument as a symbol, and
            # an ``alpha=`` keyword of a symbolic float is baked in at its first traced value (a
            # kernel first compiled for V_th = 1 then ran V_th = 0.5 with a reset of 1).
            u = x[t] if h is None else x[t] + h * beta
            s = fire(u)
            h = u - s * v_threshold
        else:
            # ``alpha=`` eagerly: the same rounding as soft_reset_forward's out= form.
            u = x[t] if h is None else torch.add(x[t], h, alpha=beta)
            s = fire(u)
            h = torch.sub(u, s, alpha=v_threshold)
        spikes.append(s)
        membranes.append(u)
    return torch.stack(spikes), (torch.stack(membranes) if keep_membrane else None)


def soft_reset_backward_fused(
    grad_spikes: torch.Tensor,
    membrane: torch.Tensor,
    tau: float,
    v_threshold: float,
    detach_reset: bool,
    slope: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """The recursion of :func:`soft_reset_backward` as pure tensor expressions (for
    ``torch.compile``: one fused loop reading ``dL/dS`` and ``U`` once, writing ``dL/dX`` once)."""
    beta = 1.0 - 1.0 / tau
    grads: list[torch.Tensor] = []
    grad_h = None
    for t in range(membrane.shape[0] - 1, -1, -1):
        sg = slope(membrane[t])
        gu = grad_spikes[t] * sg
        if grad_h is not None:
            gu = gu + grad_h if detach_reset else gu + grad_h - (grad_h * sg) * v_threshold
        grads.append(gu)
        grad_h = gu * beta
    return torch.stack(grads[::-1])


def lif_forward_kernel(
    x: torch.Tensor, tau: float, v_threshold: float, keep_membrane: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run Eq. 1–3 over time. ``x``: ``[T, ...]`` → spikes ``[T, ...]`` (0/1) and, if asked, ``U``.

    ``U[t]`` is the membrane after charging and before firing (what the surrogate needs).
    Three fused passes per timestep: ``U = X[t] + β·H`` (Eq. 1 with the leak of Eq. 3),
    ``S = [U ≥ V_th]`` (Eq. 2), ``H = U − V_th·S`` (soft reset). For τ = 2, β·H = H/2 is exact, so
    the result is bit-identical to spikingjelly's ``H − H/τ + X``.
    """

    def fire_into(u: torch.Tensor, out: torch.Tensor) -> None:
        torch.ge(u, v_threshold, out=out)

    return soft_reset_forward(x, tau, v_threshold, keep_membrane, fire_into)


def lif_backward_kernel(
    grad_spikes: torch.Tensor,
    membrane: torch.Tensor,
    tau: float,
    v_threshold: float,
    alpha: float,
    surrogate: SurrogateGrad,
    detach_reset: bool,
) -> torch.Tensor:
    """dL/dX of Eq. 1–3 given dL/dS and the saved membrane ``U``, with ∂S/∂U replaced by the
    surrogate σ'(U − V_th) (:func:`soft_reset_backward`)."""
    return soft_reset_backward(
        grad_spikes,
        membrane,
        tau,
        v_threshold,
        detach_reset,
        lambda u: surrogate(u - v_threshold, alpha),
    )


def lif_forward_fused(
    x: torch.Tensor, tau: float, v_threshold: float, keep_membrane: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Eq. 1–3 written as pure tensor expressions, for ``torch.compile`` (run eagerly it gives the
    bits of :func:`lif_forward_kernel`; compiled, the same spikes for τ = 2)."""
    return soft_reset_forward_fused(
        x, tau, v_threshold, keep_membrane, lambda u: (u >= v_threshold).to(x.dtype)
    )


def lif_backward_fused(
    grad_spikes: torch.Tensor,
    membrane: torch.Tensor,
    tau: float,
    v_threshold: float,
    alpha: float,
    surrogate: SurrogateGrad,
    detach_reset: bool,
) -> torch.Tensor:
    """The recursion of :func:`lif_backward_kernel` as pure tensor expressions."""
    return soft_reset_backward_fused(
        grad_spikes,
        membrane,
        tau,
        v_threshold,
        detach_reset,
        lambda u: surrogate(u - v_threshold, alpha),
    )


LIF_BACKENDS = ("eager", "fused", "unrolled")
"""How a :class:`LIFNeuron` runs its time loops (spikingjelly's neuron ``backend`` idea):

- ``"eager"``: :func:`lif_forward_kernel` / :func:`lif_backward_kernel`, three fused passes per
  timestep into preallocated ``out=`` buffers (the default; fastest without a compiler);
- ``"fused"``: :func:`lif_forward_fused` / :func:`lif_backward_fused` through ``torch.compile``
  (one element-wise loop over time; falls back to eager if compiling fails). The model option
  ``compile_neurons: true`` selects it;
- ``"unrolled"``: the same pure-expression kernels run eagerly — plain tensor ops a tracer
  records (the eager kernel's ``out=`` writes are invisible to ``torch.onnx.export``'s tracer).
  ONNX export switches every neuron to it for the duration of the export.

All three give the same spikes (bit for bit) and gradients to 1e-6; training through any of them
uses the same surrogate backward.
"""


def memory_order(t: torch.Tensor) -> list[int]:
    """The dimensions of ``t`` in the order its elements lie in memory, time first: ``[0, 1, 2,
    3, 4]`` for a contiguous ``[T, B, C, H, W]``, ``[0, 1, 3, 4, 2]`` for channels-last frames.
    Element-wise kernels run in that order so that the spikes keep the layout of their input."""
    return [0, *sorted(range(1, t.dim()), key=lambda d: -t.stride(d))]


def _flat(t: torch.Tensor, order: list[int]) -> torch.Tensor:
    """``[T, ...]`` as one contiguous ``[T, N]`` block in ``order``, detached and not a view: the
    compiled kernels then meet a single layout whatever the caller passed (stride-0 broadcast
    over T, channels-last, a slice, a tensor that requires grad), so Dynamo has nothing to guard
    on but the dtype and ``T`` (a view would add guards on its base's sizes). For a dense input in
    its own memory order this is a view of it, no copy."""
    return t.permute(order).reshape(t.shape[0], -1).contiguous().detach()


def _unflat(flat: torch.Tensor, like: torch.Tensor, order: list[int]) -> torch.Tensor:
    """Inverse of :func:`_flat`: ``like``'s shape, with the layout ``order`` gave the block."""
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return flat.view([like.shape[d] for d in order]).permute(inverse)


def _compiled_forward(kernel: Callable) -> Callable:
    def forward(x, *params):
        order = memory_order(x)
        spikes, membrane = kernel(_flat(x, order), *params)
        return _unflat(spikes, x, order), (
            None if membrane is None else _unflat(membrane, x, order)
        )

    return forward


def _compiled_backward(kernel: Callable) -> Callable:
    def backward(grad_spikes, membrane, *params):
        order = memory_order(membrane)
        grads = kernel(_flat(grad_spikes, order), _flat(membrane, order), *params)
        return _unflat(grads, membrane, order)

    return backward


@dataclass(frozen=True)
class KernelFamily:
    """The kernels of one neuron model: the eager reference pair and the pure-expression pair
    (run eagerly by ``"unrolled"``, compiled by ``"fused"``)."""

    name: str
    forward: Callable
    backward: Callable
    forward_fused: Callable
    backward_fused: Callable


KERNEL_FAMILIES: dict[str, KernelFamily] = {
    "lif": KernelFamily(
        "LIF", lif_forward_kernel, lif_backward_kernel, lif_forward_fused, lif_backward_fused
    )
}
"""Kernels by neuron family (``"lif"`` here; :mod:`medspikeformer.neurons.ilif` adds its own)."""


class _Kernels:
    """The forward/backward kernel pair of one backend (see :data:`LIF_BACKENDS`) of one
    neuron family (:data:`KERNEL_FAMILIES`)."""

    def __init__(self, backend: str, family: str = "lif") -> None:
        self.backend = backend
        self.family = KERNEL_FAMILIES[family]
        eager = backend == "eager"
        self.forward: Callable = self.family.forward if eager else self.family.forward_fused
        self.backward: Callable = self.family.backward if eager else self.family.backward_fused
        self.compiled = False
        if backend == "fused":
            try:
                # One compiled program per kernel and guard set, not per shape: inputs arrive
                # flattened to a contiguous [T, N] (N dynamic), and τ, V_th, α are traced as
                # symbols. What is left to guard on is the dtype (bf16 under autocast or
                # float32), whether the membrane is kept (training) or not (eval), T, the
                # surrogate and detach_reset: a handful of variants per run, well inside
                # Dynamo's recompile limit.
                # emulate_precision_casts: Inductor rounds every bf16/fp16 intermediate as eager
                # does (it would keep them in fp32 and fire differently from the eager kernel).
                opts = {"emulate_precision_casts": True}
                self.forward = _compiled_forward(
                    torch.compile(self.family.forward_fused, dynamic=True, options=opts)
                )
                self.backward = _compiled_backward(
                    torch.compile(self.family.backward_fused, dynamic=True, options=opts)
                )
                self.compiled = True
            except Exception as exc:  # pragma: no cover - depends on the platform
                log.warning(
                    "torch.compile unavailable for %s (%s); using eager kernels",
                    self.family.name,
                    exc,
                )
                self.forward, self.backward = self.family.forward, self.family.backward

    def _run(self, which: str, *args):
        """Run the ``which`` kernel ("forward"/"backward"); a compiled one that fails is replaced
        by the eager kernels for good."""
        kernel = self.forward if which == "forward" else self.backward
        if not self.compiled:
            return kernel(*args)
        try:
            return kernel(*args)
        except Exception as exc:  # pragma: no cover - depends on the platform
            log.warning(
                "compiled %s %s failed (%s); falling back to eager", self.family.name, which, exc
            )
            self.compiled = False
            self.forward, self.backward = self.family.forward, self.family.backward
        return (self.forward if which == "forward" else self.backward)(*args)

    def run_forward(self, *args):
        return self._run("forward", *args)

    def run_backward(self, *args):
        return self._run("backward", *args)


_KERNELS: dict[tuple[str, str], _Kernels] = {}
_EAGER = _Kernels("eager")


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`LIF_BACKENDS`, else ``ConfigError`` naming them."""
    if backend not in LIF_BACKENDS:
        raise ConfigError(f"unknown LIF backend {backend!r}; choose from {list(LIF_BACKENDS)}")
    return backend


def _kernels_for(backend: str, family: str = "lif") -> _Kernels:
    """The kernels of ``backend`` for a neuron family, one pair per process for each (a
    compiled pair is built on first use, so that importing the package never touches the
    compiler)."""
    key = (family, check_backend(backend))
    if key not in _KERNELS:
        _KERNELS[key] = _EAGER if key == ("lif", "eager") else _Kernels(backend, family)
    return _KERNELS[key]


def lif_unrolled(x: torch.Tensor, tau: float, v_threshold: float) -> torch.Tensor:
    """Spikes ``[T, ...]`` of ``x [T, ...]`` as the ``"unrolled"`` backend computes them: Eq. 1–3
    in plain tensor ops (traceable; the bits of :func:`lif_forward_kernel`)."""
    return lif_forward_fused(x, tau, v_threshold, False)[0]


class LIFFunction(torch.autograd.Function):
    """Autograd function for the multi-step LIF; saves only the membrane ``U``."""

    @staticmethod
    def forward(ctx, x, tau, v_threshold, alpha, surrogate, detach_reset, kernels):
        spikes, membrane = kernels.run_forward(x, tau, v_threshold, True)
        ctx.save_for_backward(membrane)
        ctx.params = (tau, v_threshold, alpha, surrogate, detach_reset, kernels)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        (membrane,) = ctx.saved_tensors
        tau, v_threshold, alpha, surrogate, detach_reset, kernels = ctx.params
        # Forward ran in x's dtype (no op of the recursion is autocast-listed, so under autocast a
        # bf16 input gives bf16 spikes and membrane); the recursion's out= buffers need dL/dS in
        # that same dtype whatever dtype the consumer of the spikes sent back.
        grad_x = kernels.run_backward(
            grad_spikes.to(membrane.dtype),
            membrane,
            tau,
            v_threshold,
            alpha,
            surrogate,
            detach_reset,
        )
        return grad_x, None, None, None, None, None, None


def lif_multistep(
    x: torch.Tensor,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    surrogate: str = "atan",
    alpha: float | None = None,
    detach_reset: bool = False,
) -> torch.Tensor:
    """Functional multi-step LIF: ``x [T, ...]`` → spikes ``[T, ...]`` (Eq. 1–3), fresh state."""
    grad_fn, default_alpha = get_surrogate(surrogate)
    a = default_alpha if alpha is None else float(alpha)
    if torch.is_grad_enabled() and x.requires_grad:
        return LIFFunction.apply(x, tau, v_threshold, a, grad_fn, detach_reset, _EAGER)
    return lif_forward_kernel(x, tau, v_threshold, False)[0]


class LIFNeuron(nn.Module):
    """Multi-step LIF neuron layer (Eq. 1–3); input ``[T, B, ...]`` → float spikes, same shape.

    Args:
        tau: membrane time constant τ > 1; leak β = 1 − 1/τ.
        v_threshold: firing threshold V_th.
        surrogate: ``"atan"`` (default, α = 2) or ``"sigmoid"`` (α = 4).
        alpha: surrogate sharpness; ``None`` → the surrogate's default.
        detach_reset: stop the gradient through the reset term V_th·S.
        compile: the older spelling of ``backend="fused"``.
        backend: ``"eager"`` (default), ``"fused"`` (``torch.compile``; eager fallback) or
            ``"unrolled"`` (plain tensor ops, for export); see :data:`LIF_BACKENDS`. Settable
            later (``neuron.backend = "unrolled"``); the results are the same in every backend.

    The state starts at zero on every call: nothing is carried between batches.
    """

    family = "lif"  # its kernels in KERNEL_FAMILIES
    binary = True  # its spikes are 0/1

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        surrogate: str = "atan",
        alpha: float | None = None,
        detach_reset: bool = False,
        compile: bool = False,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if backend is None:
            backend = "fused" if compile else "eager"
        elif compile and backend != "fused":
            raise ConfigError(f"LIF: compile=True means backend='fused', not {backend!r}")
        if not tau > 1.0:
            raise ConfigError(f"LIF tau must be > 1 (got {tau})")
        grad_fn, default_alpha = get_surrogate(surrogate)
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.surrogate = surrogate
        self.alpha = default_alpha if alpha is None else float(alpha)
        self.detach_reset = bool(detach_reset)
        self._grad_fn = grad_fn
        self._kernels = _kernels_for(backend, self.family)

    @property
    def backend(self) -> str:
        """How the time loops run: ``"eager"``, ``"fused"`` or ``"unrolled"``."""
        return self._kernels.backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name != self._kernels.backend:
            self._kernels = _kernels_for(name, self.family)

    @property
    def beta(self) -> float:
        """Membrane leak β = 1 − 1/τ of Eq. 3."""
        return 1.0 - 1.0 / self.tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return LIFFunction.apply(
                x,
                self.tau,
                self.v_threshold,
                self.alpha,
                self._grad_fn,
                self.detach_reset,
                self._kernels,
            )
        return self._kernels.run_forward(x, self.tau, self.v_threshold, False)[0]

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, surrogate={self.surrogate}, "
            f"alpha={self.alpha}, detach_reset={self.detach_reset}"
        )


class ANNActivation(nn.Module):
    """Real-valued stand-in for :class:`LIFNeuron` in the ANN twin: ReLU, any layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


@contextmanager
def lif_backend(model: nn.Module, backend: str) -> Iterator[int]:
    """Run every :class:`LIFNeuron` of ``model`` on ``backend`` inside the block (each neuron's
    own backend is restored on exit). Yields the number of neurons."""
    check_backend(backend)  # before changing any neuron
    neurons = [m for m in model.modules() if isinstance(m, LIFNeuron)]
    saved = [m._kernels for m in neurons]
    try:
        for m in neurons:
            m.backend = backend
        yield len(neurons)
    finally:
        for m, kernels in zip(neurons, saved):
            m._kernels = kernels
