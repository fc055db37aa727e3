"""Integer LIF: its equations by hand, every backend against the eager reference, the
straight-through gradient against autograd, the binary planes, the registry."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.errors import ConfigError
from medspikeformer.neurons import (
    NEURONS,
    IntegerLIFNeuron,
    LIFNeuron,
    binary_planes,
    create_neuron,
    lif_backend,
)
from medspikeformer.neurons.ilif import (
    ilif_backward_fused,
    ilif_backward_kernel,
    ilif_forward_fused,
    ilif_forward_kernel,
)

BACKENDS = ["eager", "unrolled", pytest.param("fused", marks=pytest.mark.slow)]


def _literal_ilif(x: torch.Tensor, tau: float, vth: float, levels: int) -> torch.Tensor:
    """The module docstring's three lines, with autograd (the reference for values and, through
    a straight-through clip, for gradients)."""
    beta = 1 - 1 / tau
    h = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        u = h + x[t]
        ste = torch.clamp(u / vth, 0, levels)  # ∂/∂u = 1/V_th on the window
        s = ste + (torch.round(ste) - ste).detach()  # value: clip(round(u / V_th), 0, D)
        h = beta * (u - vth * s)
        out.append(s)
    return torch.stack(out)


def test_counts_by_hand() -> None:
    """T = 3, V_th = 1, D = 4, τ = 2: U = 2.6 → 3 (H = 0.5·(−0.4) = −0.2); U = −0.2 + 9 = 8.8
    → 4 (saturates; H = 0.5·4.8 = 2.4); U = 2.4 − 1 = 1.4 → 1."""
    x = torch.tensor([2.6, 9.0, -1.0]).view(3, 1)
    s = IntegerLIFNeuron(levels=4)(x)
    assert s.flatten().tolist() == [3.0, 4.0, 1.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("tau", "vth", "levels"), [(2.0, 1.0, 4), (3.0, 0.5, 2), (2.0, 0.7, 1)])
def test_every_backend_matches_the_literal_equations(
    backend: str, tau: float, vth: float, levels: int
) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6) * 2
    ref = _literal_ilif(x, tau, vth, levels)
    neuron = IntegerLIFNeuron(tau=tau, v_threshold=vth, levels=levels, backend=backend)
    with torch.no_grad():
        assert torch.equal(neuron(x), ref)
    xg = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    g = torch.randn_like(x)
    neuron(xg).backward(g)
    _literal_ilif(xr, tau, vth, levels).backward(g)
    torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("detach_reset", [False, True])
def test_gradient_with_detached_reset_matches_autograd(detach_reset: bool) -> None:
    torch.manual_seed(1)
    x = (torch.randn(3, 2, 40) * 3).requires_grad_(True)
    xr = x.detach().clone().requires_grad_(True)
    g = torch.randn_like(x)
    IntegerLIFNeuron(levels=3, detach_reset=detach_reset)(x).backward(g)
    beta, h, out = 0.5, torch.zeros_like(xr[0]), []
    for t in range(3):
        u = h + xr[t]
        ste = torch.clamp(u, 0, 3)
        s = ste + (torch.round(ste) - ste).detach()
        h = beta * (u - (s.detach() if detach_reset else s))
        out.append(s)
    torch.stack(out).backward(g)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    steps=st.integers(1, 4),
    tau=st.sampled_from([2.0, 3.0]),
    vth=st.sampled_from([1.0, 0.5, 0.25]),
    levels=st.integers(1, 6),
    detach_reset=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fused_kernels_equal_eager_kernels(steps, tau, vth, levels, detach_reset, seed) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, 37, generator=gen) * 3
    s_ref, u_ref = ilif_forward_kernel(x, tau, vth, levels, True)
    s_f, u_f = ilif_forward_fused(x, tau, vth, levels, True)
    assert torch.equal(s_ref, s_f) and torch.equal(u_ref, u_f)
    assert s_ref.min() >= 0 and s_ref.max() <= levels and torch.equal(s_ref, s_ref.round())
    g = torch.randn(steps, 37, generator=gen)
    torch.testing.assert_close(
        ilif_backward_kernel(g, u_ref, tau, vth, levels, detach_reset),
        ilif_backward_fused(g, u_ref, tau, vth, levels, detach_reset),
    )


@pytest.mark.slow
def test_compiled_kernels_equal_eager() -> None:
    """The compiled ("fused") pair against the eager reference, forward and backward."""
    torch.manual_seed(2)
    x = torch.randn(2, 4, 8, 16, 16) * 2
    neuron = IntegerLIFNeuron(v_threshold=0.5, levels=4, backend="fused")
    xg = x.clone().requires_grad_(True)
    s = neuron(xg)
    assert neuron._kernels.compiled
    assert torch.equal(s.detach(), ilif_forward_kernel(x, 2.0, 0.5, 4, False)[0])
    g = torch.randn_like(x)
    s.backward(g)
    _, u = ilif_forward_kernel(x, 2.0, 0.5, 4, True)
    torch.testing.assert_close(xg.grad, ilif_backward_kernel(g, u, 2.0, 0.5, 4, False))


def test_t1_is_a_clipped_rounded_relu() -> None:
    """At T = 1 the I-LIF is clip(round(x / V_th), 0, D): the ANN twin's ReLU, quantised."""
    x = torch.linspace(-2, 6, 81).view(1, -1)
    s = IntegerLIFNeuron(v_threshold=1.0, levels=4)(x)
    assert torch.equal(s, torch.clamp(torch.round(x), 0, 4))


@settings(max_examples=30, deadline=None)
@given(levels=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_binary_planes_sum_to_the_counts(levels: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    s = torch.randint(0, levels + 1, (3, 5, 7), generator=gen).float()
    planes = binary_planes(s, levels)
    assert planes.shape == (levels, 3, 5, 7)
    assert bool(((planes == 0) | (planes == 1)).all())
    assert torch.equal(planes.sum(0), s)
    assert bool((planes[:-1] >= planes[1:]).all())  # s_k = [S > k]: a count fills planes in order


def test_registry_builds_each_kind_with_its_own_options() -> None:
    spec = {"kind": "ilif", "levels": 3, "v_threshold": 0.5, "surrogate": "sigmoid"}
    n = create_neuron(spec)
    assert type(n) is IntegerLIFNeuron and n.levels == 3 and n.v_threshold == 0.5
    # spikes that enter a product stay binary LIF under either choice
    q = create_neuron(spec, binary=True)
    assert type(q) is LIFNeuron and q.v_threshold == 0.5 and q.surrogate == "sigmoid"
    assert type(create_neuron({"levels": 3})) is LIFNeuron  # default kind
    assert set(NEURONS) == {"lif", "ilif"}
    with pytest.raises(ConfigError, match="unknown neuron 'blif'; choose from lif, ilif"):
        create_neuron({"kind": "blif"})


@pytest.mark.parametrize("levels", [0, -1, 2.5, True])
def test_bad_levels_are_one_line_errors(levels) -> None:
    with pytest.raises(ConfigError, match="levels must be a positive integer"):
        IntegerLIFNeuron(levels=levels)


def test_backend_context_switches_integer_neurons_too() -> None:
    model = torch.nn.Sequential(IntegerLIFNeuron(levels=2), LIFNeuron())
    with lif_backend(model, "unrolled") as n:
        assert n == 2 and all(m.backend == "unrolled" for m in model)
        x = torch.randn(2, 3, 9) * 2
        assert torch.equal(model[0](x), ilif_forward_kernel(x, 2.0, 1.0, 2, False)[0])
    assert all(m.backend == "eager" for m in model)
