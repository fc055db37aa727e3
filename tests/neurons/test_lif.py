"""LIF neuron: Eq. 1–3 by hand, parity with spikingjelly 2.0, gradients, state reset."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer import create_model
from medspikeformer.errors import ConfigError
from medspikeformer.neurons import (
    LIF_BACKENDS,
    LIFNeuron,
    atan_grad,
    heaviside,
    lif_backend,
    lif_multistep,
    sigmoid_grad,
)
from medspikeformer.neurons.lif import (
    lif_backward_fused,
    lif_backward_kernel,
    lif_forward_fused,
    lif_forward_kernel,
)


def _spikingjelly():
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except Exception as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"spikingjelly not importable: {exc}")
    return neuron, surrogate


#: Every backend; the compiled one is slow to build on a CPU, as test_compile_path_identical.
BACKENDS = ["eager", "unrolled", pytest.param("fused", marks=pytest.mark.slow)]


def _literal_lif(x: torch.Tensor, tau: float = 2.0, vth: float = 1.0) -> torch.Tensor:
    """Eq. 1–3 as written, with autograd-free Python loops (reference)."""
    beta = 1 - 1 / tau
    h = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        u = h + x[t]
        s = (u - vth >= 0).to(x.dtype)
        h = beta * (u - vth * s)
        out.append(s)
    return torch.stack(out)


def test_equations_by_hand() -> None:
    x = torch.tensor([[0.6], [0.6], [0.6], [2.5], [0.0], [1.0]])
    # U: 0.6 → 0.9 → 1.05 (spike) → 0.025+2.5=2.525 (spike) → 0.7625 → 1.38125 (spike)
    expected = torch.tensor([[0.0], [0.0], [1.0], [1.0], [0.0], [1.0]])
    assert torch.equal(LIFNeuron()(x), expected)
    assert torch.equal(_literal_lif(x), expected)


def test_threshold_is_inclusive() -> None:
    assert torch.equal(LIFNeuron()(torch.ones(1, 3)), torch.ones(1, 3))
    assert torch.equal(heaviside(torch.tensor([-1e-7, 0.0, 1.0])), torch.tensor([0.0, 1.0, 1.0]))


@pytest.mark.parametrize("tau", [2.0, 3.0])
def test_matches_literal_equations(tau: float) -> None:
    x = torch.randn(8, 4, 5, 6) * 1.5
    assert torch.equal(LIFNeuron(tau=tau)(x), _literal_lif(x, tau))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tau", [2.0, 3.0])
def test_every_backend_matches_literal_equations(backend: str, tau: float) -> None:
    x = torch.randn(8, 4, 5, 6) * 1.5
    lif = LIFNeuron(tau=tau, backend=backend)
    with torch.no_grad():
        assert torch.equal(lif(x), _literal_lif(x, tau))
    assert torch.equal(lif(x.clone().requires_grad_(True)).detach(), _literal_lif(x, tau))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surr", ["atan", "sigmoid"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("vth", [1.0, 0.5])
def test_parity_with_spikingjelly(surr: str, detach_reset: bool, vth: float, backend: str) -> None:
    neuron, surrogate = _spikingjelly()
    sj_surr = surrogate.ATan() if surr == "atan" else surrogate.Sigmoid()
    ref = neuron.LIFNode(
        tau=2.0,
        decay_input=False,
        v_reset=None,
        v_threshold=vth,
        surrogate_function=sj_surr,
        detach_reset=detach_reset,
        step_mode="m",
    )
    ours = LIFNeuron(
        tau=2.0, v_threshold=vth, surrogate=surr, detach_reset=detach_reset, backend=backend
    )
    for _ in range(3):
        x = (torch.randn(6, 3, 7, 5) * 1.2 + 0.4).requires_grad_(True)
        x_ref = x.detach().clone().requires_grad_(True)
        g = torch.randn_like(x)
        s = ours(x)
        ref.reset()
        s_ref = ref(x_ref)
        assert torch.equal(s, s_ref)
        assert 0 < s.mean() < 1
        (s * g).sum().backward()
        (s_ref * g).sum().backward()
        assert (x.grad - x_ref.grad).abs().max().item() <= 1e-6


class _AtanSpike(torch.autograd.Function):
    """Θ(u) forward, the atan surrogate (α = 2) backward: the reference's spike function."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * atan_grad(u, 2.0)


def _autograd_reference(x: torch.Tensor) -> torch.Tensor:
    """Eq. 1–3 (τ = 2, V_th = 1) as an unrolled loop that autograd differentiates."""
    h = torch.zeros_like(x[0])
    outs = []
    for t in range(x.shape[0]):
        u = h + x[t]
        s = _AtanSpike.apply(u - 1.0)
        h = 0.5 * (u - s)
        outs.append(s)
    return torch.stack(outs)


def test_gradient_against_autograd_unrolled() -> None:
    """Backward recursion equals autograd through an unrolled loop with the same surrogate."""
    x = (torch.randn(5, 4, 9, dtype=torch.float64) + 0.5).requires_grad_(True)
    g = torch.randn(5, 4, 9, dtype=torch.float64)
    (gx_ref,) = torch.autograd.grad((_autograd_reference(x) * g).sum(), x)
    (gx,) = torch.autograd.grad((lif_multistep(x) * g).sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_gradient_against_autograd_unrolled(backend: str) -> None:
    x = (torch.randn(5, 4, 9) + 0.5).requires_grad_(True)
    g = torch.randn(5, 4, 9)
    s = LIFNeuron(backend=backend)(x)
    s_ref = _autograd_reference(x)
    assert torch.equal(s, s_ref)
    (gx,) = torch.autograd.grad((s * g).sum(), x)
    (gx_ref,) = torch.autograd.grad((s_ref * g).sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=0, atol=1e-6)


def test_backend_setting() -> None:
    assert LIFNeuron().backend == "eager" and LIFNeuron(compile=True).backend == "fused"
    assert LIFNeuron(backend="unrolled").backend == "unrolled"
    assert set(LIF_BACKENDS) == {"eager", "fused", "unrolled"}
    with pytest.raises(ConfigError, match="unknown LIF backend 'jit'"):
        LIFNeuron(backend="jit")
    with pytest.raises(ConfigError, match="compile=True"):
        LIFNeuron(compile=True, backend="eager")
    lif = LIFNeuron()
    lif.backend = "unrolled"
    assert lif.backend == "unrolled" and "backend" not in vars(lif)
    with pytest.raises(ConfigError, match="backend"):
        lif.backend = "jit"


def test_lif_backend_context_sets_and_restores_every_neuron() -> None:
    model = create_model("medspikeformer", base_channels=8, timesteps=2, compile_neurons=True)
    neurons = [m for m in model.modules() if isinstance(m, LIFNeuron)]
    assert neurons and {m.backend for m in neurons} == {"fused"}  # the config key still works
    kernels = [m._kernels for m in neurons]
    with lif_backend(model, "unrolled") as n:
        assert n == len(neurons) and {m.backend for m in neurons} == {"unrolled"}
    assert [m._kernels for m in neurons] == kernels
    with pytest.raises(ConfigError, match="backend"), lif_backend(model, "jit"):
        pass
    assert {m.backend for m in neurons} == {"fused"}


def test_state_resets_between_calls() -> None:
    lif = LIFNeuron()
    x = torch.rand(4, 2, 16) * 1.5
    assert torch.equal(lif(x), lif(x))


def test_eval_and_train_paths_agree() -> None:
    lif = LIFNeuron()
    x = torch.randn(4, 2, 16) + 0.7
    with torch.no_grad():
        a = lif(x)
    b = lif(x.clone().requires_grad_(True))
    assert torch.equal(a, b.detach())


@settings(max_examples=30, deadline=None)
@given(
    steps=st.integers(1, 5),
    tau=st.sampled_from([1.5, 2.0, 3.0, 10.0]),
    vth=st.sampled_from([0.5, 1.0, 1.3]),
    surr=st.sampled_from([(atan_grad, 2.0), (sigmoid_grad, 4.0)]),
    detach_reset=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fused_kernels_equal_eager_kernels(steps, tau, vth, surr, detach_reset, seed) -> None:
    """The pure-expression kernels that ``torch.compile`` fuses compute the eager kernels' bits."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, 3, 17, generator=gen) + 0.6
    grad_s = torch.randn(steps, 3, 17, generator=gen)
    s_ref, u_ref = lif_forward_kernel(x, tau, vth, True)
    s_new, u_new = lif_forward_fused(x, tau, vth, True)
    assert torch.equal(s_ref, s_new) and torch.equal(u_ref, u_new)
    assert lif_forward_fused(x, tau, vth, False)[1] is None
    fn, alpha = surr
    g_ref = lif_backward_kernel(grad_s, u_ref, tau, vth, alpha, fn, detach_reset)
    g_new = lif_backward_fused(grad_s, u_ref, tau, vth, alpha, fn, detach_reset)
    torch.testing.assert_close(g_new, g_ref, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_compile_path_identical() -> None:
    x = (torch.randn(4, 2, 8) + 0.6).requires_grad_(True)
    eager = LIFNeuron()
    fast = LIFNeuron(compile=True)
    s1 = eager(x)
    (g1,) = torch.autograd.grad(s1.sum(), x)
    s2 = fast(x)
    (g2,) = torch.autograd.grad(s2.sum(), x)
    if not fast._kernels.compiled:
        pytest.skip("torch.compile is not usable on this platform (eager fallback ran)")
    assert torch.equal(s1, s2)
    torch.testing.assert_close(g1, g2, rtol=0, atol=1e-6)


def test_surrogate_formulas() -> None:
    x = torch.tensor([0.0, 0.3, -1.0])
    torch.testing.assert_close(atan_grad(x, 2.0), 1.0 / (1 + (torch.pi * x) ** 2))
    sig = torch.sigmoid(4 * x)
    torch.testing.assert_close(sigmoid_grad(x, 4.0), 4 * sig * (1 - sig))


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="surrogate"):
        LIFNeuron(surrogate="relu")
    with pytest.raises(ConfigError, match="tau"):
        LIFNeuron(tau=1.0)
