"""Eq. 12 distribution alignment loss: hand values, minima of both KL forms, gradients, stages."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.errors import ConfigError
from medspikeformer.losses import AlignmentLoss, bernoulli_kl, paper_kl


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _stages(seed: int, shapes=((8, 8), (4, 4), (2, 2)), b: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 1, h, w, generator=g, dtype=torch.float64) for h, w in shapes]


@pytest.mark.parametrize("kl", ["bernoulli", "paper"])
def test_hand_computed_single_stage(kl: str) -> None:
    ps, qs = [0.2, 0.7, 0.5, 0.9], [0.4, 0.6, 0.5, 0.1]
    student = [torch.tensor([_logit(p) for p in ps], dtype=torch.float64).view(1, 1, 2, 2)]
    teacher = [torch.tensor([_logit(q) for q in qs], dtype=torch.float64).view(1, 1, 2, 2)]
    eps = 1e-6
    if kl == "bernoulli":
        kls = [p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q)) for p, q in zip(ps, qs)]
    else:
        kls = [p * math.log(p / (q + eps)) for p, q in zip(ps, qs)]
    l2s = [(p - q) ** 2 for p, q in zip(ps, qs)]
    loss = AlignmentLoss(kl=kl, eps=eps)
    parts = loss.components(student, teacher)
    assert parts["kl"].item() == pytest.approx(sum(kls) / 4, rel=1e-9)
    assert parts["l2"].item() == pytest.approx(sum(l2s) / 4, rel=1e-9)
    assert loss(student, teacher).item() == pytest.approx((sum(kls) + sum(l2s)) / 4, rel=1e-9)
    assert AlignmentLoss(kl=kl, use_l2=False)(student, teacher).item() == pytest.approx(
        sum(kls) / 4, rel=1e-9
    )
    assert AlignmentLoss(kl=kl, use_kl=False)(student, teacher).item() == pytest.approx(
        sum(l2s) / 4, rel=1e-9
    )


def test_mean_over_pixels_then_stages() -> None:
    student, teacher = _stages(1), _stages(2)
    loss = AlignmentLoss()
    per_stage = [loss.components([s], [t]) for s, t in zip(student, teacher)]
    parts = loss.components(student, teacher)
    for key in ("kl", "l2"):
        expected = sum(p[key] for p in per_stage) / 3
        torch.testing.assert_close(parts[key], expected)


def test_clamp_keeps_saturated_logits_finite() -> None:
    student = [torch.tensor([[[[100.0, -100.0]]]], dtype=torch.float64)]
    teacher = [torch.tensor([[[[-100.0, 100.0]]]], dtype=torch.float64)]
    for kl in ("bernoulli", "paper"):
        assert torch.isfinite(AlignmentLoss(kl=kl)(student, teacher))


@pytest.mark.parametrize("kl", ["bernoulli", "paper"])
def test_gradcheck_float64(kl: str) -> None:
    student = [s.requires_grad_() for s in _stages(3, shapes=((3, 4), (2, 2)))]
    teacher = _stages(4, shapes=((3, 4), (2, 2)))
    loss = AlignmentLoss(kl=kl)
    assert torch.autograd.gradcheck(lambda a, b: loss([a, b], teacher), tuple(student))


@settings(max_examples=30, deadline=None)
@given(st.floats(0.02, 0.98))
def test_bernoulli_minimum_is_at_p_equals_q(q: float) -> None:
    grid = torch.linspace(1e-3, 1 - 1e-3, 20001, dtype=torch.float64)
    values = bernoulli_kl(grid, torch.full_like(grid, q))
    assert grid[values.argmin()].item() == pytest.approx(q, abs=1e-3)
    assert values.min().item() >= -1e-15
    # zero loss and zero gradient when the student equals the teacher
    z = torch.tensor([[[[_logit(q)]]]], dtype=torch.float64, requires_grad=True)
    out = AlignmentLoss(use_l2=False)([z], [z.detach().clone()])
    out.backward()
    assert out.item() == pytest.approx(0.0, abs=1e-12)
    assert abs(z.grad.item()) < 1e-9


@settings(max_examples=30, deadline=None)
@given(st.floats(0.05, 0.98))
def test_paper_form_minimum_is_at_q_over_e(q: float) -> None:
    eps = 1e-6
    grid = torch.linspace(1e-4, 1 - 1e-4, 40001, dtype=torch.float64)
    values = paper_kl(grid, torch.full_like(grid, q), eps)
    assert grid[values.argmin()].item() == pytest.approx((q + eps) / math.e, abs=1e-4)
    # the student's gradient vanishes at q/e and not at q: the term biases the student down
    loss = AlignmentLoss(kl="paper", use_l2=False, eps=eps)
    teacher = [torch.tensor([[[[_logit(q)]]]], dtype=torch.float64)]
    at_q_over_e = torch.tensor([[[[_logit((q + eps) / math.e)]]]], dtype=torch.float64)
    at_q = teacher[0].clone()
    for z, vanishes in ((at_q_over_e, True), (at_q, False)):
        z.requires_grad_()
        loss([z], teacher).backward()
        assert (abs(z.grad.item()) < 1e-9) == vanishes
    # at p = q the gradient is positive: descent lowers p
    assert at_q.grad.item() > 0


def test_teacher_gets_no_gradient() -> None:
    student = [s.requires_grad_() for s in _stages(5)]
    teacher = [t.requires_grad_() for t in _stages(6)]
    for kl in ("bernoulli", "paper"):
        AlignmentLoss(kl=kl)(student, teacher).backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)


def test_stage_selection_is_by_index() -> None:
    student = [s.requires_grad_() for s in _stages(7)]
    teacher = _stages(8)
    # the released code's bug would read the value 2 of [2] as "stage list position"; ours takes
    # stage 2 only, and [1, 2] takes stages 1 and 2 (not values used as positions in another list)
    only2 = AlignmentLoss(stages=[2])
    expected = AlignmentLoss()([student[2]], [teacher[2]])
    torch.testing.assert_close(only2(student, teacher), expected)
    only2(student, teacher).backward()
    assert student[0].grad is None and student[1].grad is None
    assert student[2].grad is not None
    both = AlignmentLoss(stages=[2, 0])(student, teacher)
    pair = (
        AlignmentLoss()([student[0]], [teacher[0]]) + AlignmentLoss()([student[2]], [teacher[2]])
    ) / 2
    torch.testing.assert_close(both, pair)
    torch.testing.assert_close(AlignmentLoss(stages=[-1])(student, teacher), expected)


def test_changing_unselected_stage_does_not_change_loss() -> None:
    student, teacher = _stages(9), _stages(10)
    loss = AlignmentLoss(stages=[1])
    before = loss(student, teacher)
    student[0] = student[0] + 5.0
    student[2] = student[2] - 5.0
    torch.testing.assert_close(loss(student, teacher), before)


def test_config_errors() -> None:
    student, teacher = _stages(11), _stages(12)
    with pytest.raises(ConfigError, match="out of range"):
        AlignmentLoss(stages=[3])(student, teacher)
    with pytest.raises(ConfigError, match="out of range"):
        AlignmentLoss(stages=[-4])(student, teacher)
    with pytest.raises(ConfigError, match="twice"):
        AlignmentLoss(stages=[0, -3])(student, teacher)
    with pytest.raises(ConfigError, match="integer"):
        AlignmentLoss(stages=[1.0])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="kl"):
        AlignmentLoss(kl="js")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="both off"):
        AlignmentLoss(use_kl=False, use_l2=False)
    with pytest.raises(ConfigError, match="teacher"):
        AlignmentLoss()(student, teacher[:2])
    with pytest.raises(ConfigError, match="shape"):
        AlignmentLoss()(student, [teacher[0], teacher[2], teacher[1]])
