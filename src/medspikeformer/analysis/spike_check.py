"""Spike-driven check: which synaptic layers (conv / linear) receive only spikes.

A model is spike-driven when every synaptic layer except the first (which encodes the real-valued
image) receives binary spikes {0, 1} — or, where a design allows it, non-negative integer spike
counts. :func:`check_spike_driven` runs one forward pass with hooks on every conv/linear layer
and records what each one saw. Training-only layers (the stage mask heads) are listed but exempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from medspikeformer.analysis.hooks import SYNAPTIC_TYPES, InputStats, watch_synaptic_inputs
from medspikeformer.models import SegmentationModel, module_facts

__all__ = ["SYNAPTIC_TYPES", "LayerRecord", "SpikeCheckReport", "check_spike_driven"]


@dataclass
class LayerRecord:
    """What one synaptic layer saw during the checked forward pass."""

    name: str
    kind: str
    order: int  # execution order of the first call (0 = first synaptic layer run)
    binary: bool = True  # every input value in {0, 1}
    counts: bool = True  # every input value a non-negative integer
    min: float = float("inf")
    max: float = float("-inf")
    nonzero: float = 0.0  # fraction of non-zero inputs (firing rate for spike inputs)
    calls: int = 0
    first: bool = False
    training_only: bool = False

    @property
    def status(self) -> str:
        if self.first:
            return "first (real input allowed)"
        if self.training_only:
            return "training-only (exempt)"
        if self.binary:
            return "spikes"
        if self.counts:
            return "spike counts"
        return "REAL-VALUED"


@dataclass
class SpikeCheckReport:
    """Result of :func:`check_spike_driven`; ``violations`` empty means spike-driven."""

    model_name: str
    layers: list[LayerRecord]
    allow_counts: bool = False
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def first_layer(self) -> str | None:
        return next((r.name for r in self.layers if r.first), None)

    def table(self) -> str:
        """Plain-text table, one row per synaptic layer in execution order."""
        rows = [("#", "layer", "type", "input min", "input max", "nonzero", "status")]
        for r in self.layers:
            rows.append(
                (
                    str(r.order),
                    r.name,
                    r.kind,
                    f"{r.min:.3g}",
                    f"{r.max:.3g}",
                    f"{r.nonzero:.3f}",
                    r.status,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        verdict = "spike-driven" if self.ok else f"{len(self.violations)} violation(s)"
        lines.append(f"{self.model_name}: {len(self.layers)} synaptic layers, {verdict}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def check_spike_driven(
    model: nn.Module,
    x: torch.Tensor,
    *,
    allow_counts: bool = False,
    training_only: Sequence[str] = ("stage_heads",),
    train_mode: bool = False,
) -> SpikeCheckReport:
    """Run ``model`` on ``x`` with hooks on every conv/linear layer and report their inputs.

    Args:
        model: any ``nn.Module``; ``forward_all`` is used when present (so that the stage heads
            run and show up as training-only), else ``forward``.
        x: an input batch, e.g. ``[B, C_in, H, W]``.
        allow_counts: accept non-negative integer inputs (spike counts) as well as {0, 1}.
        training_only: module-name prefixes of layers that only run in training (exempt).
        train_mode: run in training mode (BN batch statistics; neurons fire more) instead of eval.

    The first synaptic layer executed is exempt (it encodes the real-valued image). The model's
    training flag is restored afterwards; no gradients are computed.
    """
    stats: dict[str, InputStats] = {}  # filled in execution order of the first calls
    handles = watch_synaptic_inputs(model, stats)
    was_training = model.training
    model.train(train_mode)
    try:
        with torch.no_grad():
            if isinstance(model, SegmentationModel):
                model.forward_all(x)
            else:
                model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()

    kinds = dict(model.named_modules())
    layers = [
        LayerRecord(
            name,
            type(kinds[name]).__name__,
            i,
            binary=st.binary,
            counts=st.counts,
            min=st.min,
            max=st.max,
            nonzero=st.nonzero,
            calls=st.calls,
        )
        for i, (name, st) in enumerate(stats.items())
    ]
    first_done = False
    violations = []
    for rec in layers:
        rec.training_only = any(
            rec.name == p or rec.name.startswith(p + ".") for p in training_only
        )
        if not first_done and not rec.training_only:
            rec.first = first_done = True
            continue
        if rec.training_only:
            continue
        if rec.counts and not rec.binary and not allow_counts:
            violations.append(
                f"{rec.name} ({rec.kind}) receives integer spike counts up to {rec.max:.3g} (0/1 "
                "events only under models.expansion.binary_expansion, or pass allow_counts=True)"
            )
        elif not (rec.binary or (allow_counts and rec.counts)):
            violations.append(
                f"{rec.name} ({rec.kind}) receives non-spike input in [{rec.min:.3g}, {rec.max:.3g}]"
            )
    return SpikeCheckReport(module_facts(model).model_name, layers, allow_counts, violations)
