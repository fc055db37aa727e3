"""Integer-valued multi-step LIF (I-LIF): spikes are counts in {0, …, D}, not bits.

Layout ``[T, B, ...]`` as :class:`~medspikeformer.neurons.LIFNeuron`. Per element and timestep:

    U[t] = H[t-1] + X[t]                              (charge, as Eq. 1; H[-1] = 0)
    S[t] = clip(round(U[t] / V_th), 0, D)             (fire an integer count, D = ``levels``)
    H[t] = β (U[t] − V_th · S[t]),  β = 1 − 1/τ       (soft reset by what fired, then leak)

With ``D = 1`` and ``V_th = 1`` the count is ``round(clip(U, 0, 1))``: fires from U ≥ 0.5, not
from U ≥ 1 — not the paper's LIF (Eq. 2); the ``lif`` neuron stays the paper's.

Training uses a straight-through gradient: ∂S/∂U = 1/V_th where 0 ≤ U ≤ D·V_th, else 0 (the
gradient of the clip without the rounding); the reset term is differentiated as in the LIF
(``detach_reset`` drops it). Inside the window the reset cancels the temporal path (β·(1 − V_th ·
1/V_th) = 0): the membrane carries gradient through time only where the neuron saturates or is
silent.

Spike-driven inference: an integer spike S is D binary spikes s_k = [S > k], k = 0 … D−1 ("virtual
timesteps", :func:`binary_planes`), and any synaptic layer W is linear, so W·S = Σ_k W·s_k — the
network runs on 0/1 events only, S of them for a count S (:mod:`medspikeformer.neurons.expansion`).
"""

from __future__ import annotations

import torch

from medspikeformer.errors import ConfigError
from medspikeformer.neurons.lif import (
    KERNEL_FAMILIES,
    KernelFamily,
    LIFNeuron,
    soft_reset_backward,
    soft_reset_backward_fused,
    soft_reset_forward,
    soft_reset_forward_fused,
)


def ilif_fire(u: torch.Tensor, v_threshold: float, levels: int) -> torch.Tensor:
    """The count the membrane ``U`` fires: ``clip(round(U / V_th), 0, D)``."""
    return torch.clamp(torch.round(u / v_threshold), 0, levels)


def ilif_window(u: torch.Tensor, v_threshold: float, levels: int) -> torch.Tensor:
    """∂S/∂U of the straight-through estimator: ``1/V_th`` on ``0 ≤ U ≤ D·V_th``, else 0."""
    inside = (u >= 0) & (u <= levels * v_threshold)
    return inside.to(u.dtype) * (1.0 / v_threshold)


def ilif_forward_kernel(
    x: torch.Tensor, tau: float, v_threshold: float, levels: int, keep_membrane: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the I-LIF over time (eager reference). ``x``: ``[T, ...]`` → counts ``[T, ...]`` in
    {0..D} and, if asked, the membrane ``U`` before firing (what the straight-through gradient
    needs)."""

    def fire_into(u: torch.Tensor, out: torch.Tensor) -> None:
        torch.div(u, v_threshold, out=out)
        out.round_().clamp_(0, levels)

    return soft_reset_forward(x, tau, v_threshold, keep_membrane, fire_into)


def ilif_backward_kernel(
    grad_spikes: torch.Tensor,
    membrane: torch.Tensor,
    tau: float,
    v_threshold: float,
    levels: int,
    detach_reset: bool,
) -> torch.Tensor:
    """dL/dX given dL/dS and the saved membrane ``U``, with ∂S/∂U the straight-through
    :func:`ilif_window` (:func:`~medspikeformer.neurons.lif.soft_reset_backward`)."""
    return soft_reset_backward(
        grad_spikes,
        membrane,
        tau,
        v_threshold,
        detach_reset,
        lambda u: ilif_window(u, v_threshold, levels),
    )


def ilif_forward_fused(
    x: torch.Tensor, tau: float, v_threshold: float, levels: int, keep_membrane: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`ilif_forward_kernel` as pure tensor expressions (for ``torch.compile`` and tracing;
    run eagerly it gives the same bits)."""
    return soft_reset_forward_fused(
        x, tau, v_threshold, keep_membrane, lambda u: ilif_fire(u, v_threshold, levels)
    )


def ilif_backward_fused(
    grad_spikes: torch.Tensor,
    membrane: torch.Tensor,
    tau: float,
    v_threshold: float,
    levels: int,
    detach_reset: bool,
) -> torch.Tensor:
    """The recursion of :func:`ilif_backward_kernel` as pure tensor expressions."""
    return soft_reset_backward_fused(
        grad_spikes,
        membrane,
        tau,
        v_threshold,
        detach_reset,
        lambda u: ilif_window(u, v_threshold, levels),
    )


KERNEL_FAMILIES["ilif"] = KernelFamily(
    "I-LIF", ilif_forward_kernel, ilif_backward_kernel, ilif_forward_fused, ilif_backward_fused
)


class ILIFFunction(torch.autograd.Function):
    """Autograd function of the multi-step I-LIF; saves only the membrane ``U``."""

    @staticmethod
    def forward(ctx, x, tau, v_threshold, levels, detach_reset, kernels):
        spikes, membrane = kernels.run_forward(x, tau, v_threshold, levels, True)
        ctx.save_for_backward(membrane)
        ctx.params = (tau, v_threshold, levels, detach_reset, kernels)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        (membrane,) = ctx.saved_tensors
        tau, v_threshold, levels, detach_reset, kernels = ctx.params
        grad_x = kernels.run_backward(
            grad_spikes.to(membrane.dtype),
            membrane,
            tau,
            v_threshold,
            levels,
            detach_reset,
        )
        return grad_x, None, None, None, None, None


def binary_planes(spikes: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer spikes ``[N, ...]`` in {0..D} → ``[D, N, ...]`` binary planes ``s_k = [S > k]``
    (k = 0 … D−1), whose sum over the first axis is ``spikes``: the D virtual timesteps."""
    ks = torch.arange(levels, device=spikes.device, dtype=spikes.dtype)
    shape = (levels,) + (1,) * spikes.dim()
    return (spikes.unsqueeze(0) > ks.view(shape)).to(spikes.dtype)


class IntegerLIFNeuron(LIFNeuron):
    """Multi-step integer LIF (I-LIF) layer: input ``[T, B, ...]`` → counts in {0..D}, same shape.

    Args:
        tau: membrane time constant τ > 1; leak β = 1 − 1/τ.
        v_threshold: the membrane a count of one stands for, V_th.
        levels: the largest count D ≥ 1 (D binary sub-steps at spike-driven inference).
        detach_reset: stop the gradient through the reset term V_th·S.
        surrogate, alpha: accepted for a common neuron signature and ignored (the gradient is
            straight-through, see the module docstring).
        compile, backend: as :class:`LIFNeuron` (``"eager"``, ``"fused"``, ``"unrolled"``).
    """

    family = "ilif"
    binary = False

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        levels: int = 4,
        surrogate: str = "atan",
        alpha: float | None = None,
        detach_reset: bool = False,
        compile: bool = False,
        backend: str | None = None,
    ) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ConfigError(f"I-LIF levels must be a positive integer (got {levels!r})")
        if not v_threshold > 0:
            raise ConfigError(f"I-LIF v_threshold must be > 0 (got {v_threshold})")
        super().__init__(tau, v_threshold, surrogate, alpha, detach_reset, compile, backend)
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return ILIFFunction.apply(
                x, self.tau, self.v_threshold, self.levels, self.detach_reset, self._kernels
            )
        return self._kernels.run_forward(x, self.tau, self.v_threshold, self.levels, False)[0]

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, v_threshold={self.v_threshold}, levels={self.levels}, "
            f"detach_reset={self.detach_reset}"
        )
