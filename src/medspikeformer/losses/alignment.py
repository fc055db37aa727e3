"""Distribution alignment loss between the SNN student and the ANN teacher (paper Sec. 3.3, Eq. 12).

Both networks have one stage mask head per encoder unit (``[B, 1, h_i, w_i]`` logits). With
``p = clamp(sigmoid(student), ε, 1−ε)`` and ``q = clamp(sigmoid(teacher.detach()), ε, 1−ε)``::

    L_align = mean over aligned stages s of  mean over pixels [ KL(p, q) + (p − q)² ]

Two KL terms are available:

* ``kl="bernoulli"`` (default): :func:`bernoulli_kl`, the KL divergence between the two per-pixel
  Bernoulli distributions, ``p log(p/q) + (1−p) log((1−p)/(1−q))``. It is ≥ 0 and zero exactly at
  ``p = q``.
* ``kl="paper"``: :func:`paper_kl`, the literal term of Eq. 12, ``p log(p / (q + ε))``. Its derivative
  in ``p`` is ``log(p/(q+ε)) + 1``, so for a fixed teacher it is minimised at ``p = (q+ε)/e ≈ q/e``,
  not at ``p = q``: it pulls the student's probabilities down by a factor e. Kept for reproduction.

Heads with K > 1 channels (``docs/architecture.md``, "Multi-class heads"):

* sigmoid heads (binary, or K overlapping multi-label regions): the terms above per channel,
  averaged over channels and pixels — each channel is its own Bernoulli variable;
* softmax heads (K exclusive classes): ``activation="softmax"``, ``p = clamp(softmax(student))``
  over the channel axis and the **categorical** KL :func:`categorical_kl`
  ``Σ_c p_c log(p_c / q_c)`` with ``½ Σ_c (p_c − q_c)²``, averaged over pixels. A pixel's
  classes are one distribution, not K independent coins: per-channel Bernoulli terms would
  count every mistake twice (the mass one class loses, another gains) and ignore that the
  probabilities sum to one. For K = 2 with logits ``[0, z]`` both terms equal the binary ones
  of ``z`` exactly (the ½ makes the squared error match).

The teacher is always detached: no gradient flows into it from this loss. Stages are chosen by
0-based index into the list of stage logits (the released code iterated the values of its list).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from medspikeformer.errors import ConfigError
from medspikeformer.precision import float32_region, upcast

__all__ = [
    "KL_FORMS",
    "AlignmentLoss",
    "alignment_components",
    "bernoulli_kl",
    "categorical_kl",
    "paper_kl",
    "squared_error",
    "stage_probabilities",
]

KL_FORMS = ("bernoulli", "paper")
KLForm = Literal["bernoulli", "paper"]


def stage_probabilities(logits: Tensor, eps: float, activation: str = "sigmoid") -> Tensor:
    """``Ô = clamp(sigmoid(logits), ε, 1−ε)`` (Eq. 12's hat), same shape as ``logits``;
    ``activation="softmax"``: the softmax over the channel axis (dim 1), clamped the same way."""
    probs = torch.softmax(logits, dim=1) if activation == "softmax" else torch.sigmoid(logits)
    return probs.clamp(eps, 1.0 - eps)


def categorical_kl(p: Tensor, q: Tensor) -> Tensor:
    """Per-pixel categorical KL ``Σ_c p_c log(p_c / q_c)`` over the channel axis (dim 1):
    ``[B, K, h, w]`` → ``[B, h, w]``. Non-negative for distributions, zero iff ``p = q``."""
    return (p * (torch.log(p) - torch.log(q))).sum(1)


def bernoulli_kl(p: Tensor, q: Tensor) -> Tensor:
    """Element-wise Bernoulli KL ``p log(p/q) + (1−p) log((1−p)/(1−q))``; ``p, q ∈ (0, 1)``.

    Non-negative, zero iff ``p = q``. Shapes broadcast; returns the element-wise map.
    """
    return p * (torch.log(p) - torch.log(q)) + (1.0 - p) * (torch.log1p(-p) - torch.log1p(-q))


def paper_kl(p: Tensor, q: Tensor, eps: float) -> Tensor:
    """Element-wise literal KL term of Eq. 12, ``p log(p / (q + ε))``.

    Not a divergence: for fixed ``q`` it is minimised at ``p = (q + ε)/e`` (value ``−(q+ε)/e``),
    and it can be negative.
    """
    return p * (torch.log(p) - torch.log(q + eps))


def squared_error(p: Tensor, q: Tensor) -> Tensor:
    """Element-wise ``(p − q)²``, the L2 term of Eq. 12."""
    return (p - q) ** 2


def _resolve_stages(stages: Sequence[int] | None, n: int) -> list[int]:
    if stages is None:
        return list(range(n))
    resolved: list[int] = []
    for s in stages:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ConfigError(f"alignment stages must be integer indices, got {s!r}")
        if not -n <= s < n:
            raise ConfigError(
                f"alignment stage index {s} is out of range for {n} stages "
                f"(indices are 0-based: 0..{n - 1})"
            )
        idx = s % n
        if idx in resolved:
            raise ConfigError(f"alignment stage index {s} is listed twice (stages={list(stages)})")
        resolved.append(idx)
    return resolved


def alignment_components(
    student: Sequence[Tensor],
    teacher: Sequence[Tensor],
    *,
    kl: KLForm = "bernoulli",
    stages: Sequence[int] | None = None,
    eps: float = 1e-6,
    activation: str = "sigmoid",
) -> dict[str, Tensor]:
    """Eq. 12 split in its two terms: ``{"kl": ..., "l2": ...}``, each averaged over pixels and
    then over the aligned stages.

    Args:
        student: stage logits of the SNN, one ``[B, K, h_i, w_i]`` tensor per encoder unit.
        teacher: stage logits of the ANN teacher, same shapes; detached here.
        kl: ``"bernoulli"`` or ``"paper"`` (see module docstring).
        stages: 0-based indices of the stages to align; ``None`` → all.
        eps: clamp ε for the probabilities (and the ε of the paper's ``q + ε``).
        activation: ``"sigmoid"`` (per-channel Bernoulli terms; binary and multi-label heads)
            or ``"softmax"`` (categorical terms over the K classes).
    """
    if kl not in KL_FORMS:
        raise ConfigError(f"alignment kl must be one of {KL_FORMS}, got {kl!r}")
    if len(student) != len(teacher):
        raise ConfigError(
            f"alignment: student has {len(student)} stage outputs, teacher {len(teacher)}"
        )
    if len(student) == 0:
        raise ConfigError("alignment: no stage outputs were given")
    chosen = _resolve_stages(stages, len(student))
    kl_terms: list[Tensor] = []
    l2_terms: list[Tensor] = []
    for i in chosen:
        s_logits, t_logits = student[i], teacher[i]
        if s_logits.shape != t_logits.shape:
            raise ConfigError(
                f"alignment stage {i}: student shape {tuple(s_logits.shape)} != teacher shape "
                f"{tuple(t_logits.shape)} (teacher built with another config?)"
            )
        p = stage_probabilities(s_logits, eps, activation)
        q = stage_probabilities(t_logits.detach(), eps, activation)
        if activation == "softmax":
            kl_map = categorical_kl(p, q) if kl == "bernoulli" else paper_kl(p, q, eps).sum(1)
            kl_terms.append(kl_map.mean())
            l2_terms.append(0.5 * squared_error(p, q).sum(1).mean())
            continue
        kl_map = bernoulli_kl(p, q) if kl == "bernoulli" else paper_kl(p, q, eps)
        kl_terms.append(kl_map.mean())
        l2_terms.append(squared_error(p, q).mean())
    return {"kl": torch.stack(kl_terms).mean(), "l2": torch.stack(l2_terms).mean()}


class AlignmentLoss(nn.Module):
    """``L_align`` (Eq. 12) with switches for the w/o-KL and w/o-L2 ablations.

    Args:
        kl: ``"bernoulli"`` (default, minimum at p = q) or ``"paper"`` (literal Eq. 12).
        use_kl, use_l2: include the KL / the squared-error term (at least one must be on).
        stages: 0-based stage indices to align, ``None`` → all stages.
        eps: probability clamp ε.
        activation: ``"sigmoid"`` (default; per-channel Bernoulli) or ``"softmax"``
            (categorical, for K-class softmax heads).

    ``forward(student_stage_logits, teacher_stage_logits) -> scalar``;
    :meth:`components` returns ``{"kl", "l2"}`` (both always computed, for logging).
    """

    def __init__(
        self,
        kl: KLForm = "bernoulli",
        use_kl: bool = True,
        use_l2: bool = True,
        stages: Sequence[int] | None = None,
        eps: float = 1e-6,
        activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        if activation not in ("sigmoid", "softmax"):
            raise ConfigError(
                f"AlignmentLoss: activation must be sigmoid or softmax, got {activation!r}"
            )
        if kl not in KL_FORMS:
            raise ConfigError(f"AlignmentLoss: kl must be one of {KL_FORMS}, got {kl!r}")
        if not (use_kl or use_l2):
            raise ConfigError(
                "AlignmentLoss: use_kl and use_l2 are both off; disable the alignment loss instead"
            )
        if not 0.0 < eps < 0.5:
            raise ConfigError(f"AlignmentLoss: eps must be in (0, 0.5), got {eps}")
        if stages is not None:
            for s in stages:
                if isinstance(s, bool) or not isinstance(s, int):
                    raise ConfigError(f"AlignmentLoss: stages must be integer indices, got {s!r}")
        self.kl = kl
        self.use_kl = bool(use_kl)
        self.use_l2 = bool(use_l2)
        self.stages = None if stages is None else list(stages)
        self.eps = float(eps)
        self.activation = activation

    def components(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> dict[str, Tensor]:
        """Unweighted ``{"kl", "l2"}`` terms (scalars), in float32 (bf16/fp16 stage logits are
        upcast, autocast is off)."""
        if not student:
            return alignment_components(
                student,
                teacher,
                kl=self.kl,
                stages=self.stages,
                eps=self.eps,
                activation=self.activation,
            )
        with float32_region(student[0].device.type):
            return alignment_components(
                [upcast(s) for s in student],
                [upcast(t) for t in teacher],
                kl=self.kl,
                stages=self.stages,
                eps=self.eps,
                activation=self.activation,
            )

    def forward(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
        parts = self.components(student, teacher)
        total = parts["kl"] if self.use_kl else torch.zeros_like(parts["kl"])
        if self.use_l2:
            total = total + parts["l2"]
        return total

    def extra_repr(self) -> str:
        return (
            f"kl={self.kl!r}, use_kl={self.use_kl}, use_l2={self.use_l2}, "
            f"stages={self.stages}, eps={self.eps}"
        )
