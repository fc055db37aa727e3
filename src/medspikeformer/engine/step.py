"""The training step of a config: what ``medspikeformer train`` runs per batch, minus data loading.

Per step (DESIGN.md Sec. 1, "ANN teacher and distribution alignment")::

    out   = student.forward_all(x)                      # logits + stage logits
    L_seg = BCE(out.logits, y) + Dice(out.logits, y)    # Eq. 13
    joint teacher:   t = teacher.forward_all(x);  L_teacher = L_seg(t.logits, y)   (own optimiser)
    frozen teacher:  t = teacher.forward_all(x) under no_grad
    L_align = AlignmentLoss(out.stage_logits, detach(t.stage_logits))   # Eq. 12
    L_total = L_seg + λ_align · L_align + Σ extra terms  # student's objective

Both objectives are summed for one backward pass; since the teacher's stage maps enter the student's
loss detached, the student's gradients come only from ``L_total`` and the teacher's only from
``L_teacher``.

Public use — time or drive the true step over any iterable of batches (``{"image", "mask"}``)::

    from medspikeformer.engine import TrainingStep, run_steps
    step = TrainingStep.from_config("kvasir")   # or a TrainConfig / nested dict
    for batch in batches:
        terms = step(batch)            # {"bce", "dice", ..., "total"}: device tensors, no read
    run_steps(config, batches)         # the same, returns the last step's terms

Seams: :meth:`TrainingStep.loss_step` (forwards + every loss term by name),
:meth:`TrainingStep.optimizer_step` (backward, clipping, skip-on-non-finite, update),
:meth:`TrainingStep.add_loss_term` (a new weighted term of the student's objective, for one
run), :data:`LOSS_TERMS` (the built-in terms: one entry each) and
:class:`~medspikeformer.engine.callbacks.Callback` for loggers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medspikeformer.engine import checkpoint as ckpt_mod
from medspikeformer.engine.callbacks import Callback
from medspikeformer.engine.config import (
    TrainConfig,
    build_model_from_config,
    check_size_divisor,
    config_from_dict,
    load_config,
    validate_config,
)
from medspikeformer.engine.distributed import DistInfo, all_reduce_sum
from medspikeformer.engine.optim import build_optimizer, grad_norm
from medspikeformer.engine.state import seed_everything
from medspikeformer.errors import CheckpointError, ConfigError, NumericalError
from medspikeformer.losses import (
    AlignmentLoss,
    BCEDiceLoss,
    MultiClassDiceLoss,
    stage_supervision_loss,
)
from medspikeformer.models import SegmentationModel, SegmentationOutput, build_teacher, model_info
from medspikeformer.precision import autocast, make_grad_scaler, resolve_precision
from medspikeformer.runtime import resolve_device

__all__ = [
    "FINITE_CHECK_EVERY",
    "LOSS_TERMS",
    "UNLOGGED_TERMS",
    "Callback",
    "LossTerm",
    "StepOutputs",
    "StepVerdict",
    "TrainingStep",
    "resolve_teacher_mode",
    "run_steps",
]


def resolve_teacher_mode(config: TrainConfig) -> str:
    """``auto`` → the model's registered default (``joint`` for the medspikeformer family,
    ``none`` for the baselines); any other mode as given. An unknown model name → ``none``
    (building it fails later with the registry's error)."""
    mode = config.teacher.mode
    if mode != "auto":
        return mode
    try:
        return model_info(config.model.name).default_teacher
    except ConfigError:
        return "none"


@dataclass
class StepOutputs:
    """What one step's forwards produced, handed to extra loss terms.

    Attributes:
        image: ``[B, C, H, W]`` input on the device; mask: ``[B, 1, H, W]`` target (binary, or
            class ids for a softmax model; ``[B, K, H, W]`` for a multi-label one).
        student: the student's :class:`SegmentationOutput` (logits + stage logits).
        teacher_stages: the teacher's stage logits (detached, float32), empty without a teacher.
        teacher: a joint teacher's :class:`SegmentationOutput` (with its graph), else None.
        cache: parts shared by several terms within the step (e.g. the loss's ``bce``/``dice``).
    """

    image: torch.Tensor
    mask: torch.Tensor
    student: SegmentationOutput
    teacher_stages: list[torch.Tensor]
    teacher: SegmentationOutput | None = None
    cache: dict[str, Any] = field(default_factory=dict)


LossTermFn = Callable[[StepOutputs], torch.Tensor]


#: Steps between the host reads of a deferred finite check (``check_every`` of the trainer's
#: step; docs/training.md, "Non-finite steps"): one device sync per this many steps, and at most
#: this many steps run on after a non-finite one before ``nan_policy=stop`` stops the run.
FINITE_CHECK_EVERY = 50

#: The values a non-finite step's error names (the step's terms, then its gradient norm).
_DESCRIBED = ("total", "bce", "dice", "align", "teacher_seg")


@dataclass
class StepVerdict:
    """Outcome of :meth:`TrainingStep.optimizer_step`: ``applied`` (finite, update done; ``None``
    while the finite check is deferred: :meth:`TrainingStep.settle` decides) and the student
    objective when it was asked for (read in the same host read as the verdict)."""

    applied: bool | None
    loss: float | None = None


class _ForwardAll(nn.Module):
    """``module.forward_all(x, attention=False)`` as a ``forward``, so that DDP and
    ``torch.compile`` wrap the call the trainer makes (state_dict keys gain a ``model.`` prefix:
    never saved, the bare model is)."""

    def __init__(self, model: SegmentationModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> SegmentationOutput:
        return self.model.forward_all(x, attention=False)


class TrainingStep:
    """Student (+ teacher), losses, optimisers and gradient scaler of one training config.

    Build with :meth:`from_config` (seeds the RNGs from ``train.seed`` first, as a run does) or
    directly from a resolved :class:`TrainConfig` after seeding. ``step(batch)`` = one real
    training step; see the module docstring for the seams.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        device: torch.device | str | None = None,
        dist: DistInfo | None = None,
        callbacks: Iterable[Callback] = (),
        check_every: int = 1,
    ) -> None:
        self.cfg = config
        t = config.train
        self.device = resolve_device(t.device if device is None else device)
        self.dist = dist
        self.precision = resolve_precision(t.precision, self.device)
        # Enabled for fp16 only; for fp32/bf16 its scale/step/update are plain pass-throughs.
        self.scaler = make_grad_scaler(self.device, self.precision)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.teacher_mode = resolve_teacher_mode(config)
        self.callbacks: list[Callback] = list(callbacks)
        self.extra_terms: dict[str, tuple[LossTermFn, float]] = {}

        self.student: SegmentationModel = build_model_from_config(config).to(
            self.device, memory_format=self.memory_format
        )
        check_size_divisor(config.data.size, self.student.size_divisor, config.model.name)
        self.teacher: SegmentationModel | None = None
        if self.teacher_mode == "joint":
            self.teacher = build_teacher(self.student).to(
                self.device, memory_format=self.memory_format
            )
        elif self.teacher_mode != "none":
            self.teacher = self._load_frozen_teacher(Path(self.teacher_mode))
        self.align_loss: AlignmentLoss | None = None
        if self.teacher is not None:
            a = config.teacher.align
            self.align_loss = AlignmentLoss(
                kl=a.kl,
                use_kl=a.use_kl,
                use_l2=a.use_l2,
                stages=a.stages,
                activation=self.student.activation,
            )
        # Eq. 13 for a binary model; softmax CE + Dice / multi-label for K > 1 (losses/multiclass.py)
        if self.student.num_classes == 1:
            self.seg_loss: nn.Module = BCEDiceLoss()
        else:
            self.seg_loss = MultiClassDiceLoss(multilabel=self.student.multilabel)
        self.opt = build_optimizer(self.student.parameters(), config, config.optim.lr)
        self.t_opt: torch.optim.Optimizer | None = None
        if self.teacher_mode == "joint":
            self.t_opt = build_optimizer(
                self.teacher.parameters(), config, config.teacher.lr or config.optim.lr
            )
        self.student_fwd: nn.Module = _ForwardAll(self.student)
        self.teacher_fwd: nn.Module | None = (
            _ForwardAll(self.teacher) if self.teacher_mode == "joint" else None
        )
        # Parameter lists for the gradient norms, built once (not on every step).
        self._s_params = [p for p in self.student.parameters() if p.requires_grad]
        self._t_params = list(self.teacher.parameters()) if self.t_opt is not None else []
        self.last_verdict: StepVerdict | None = None
        self.steps = 0  # applied optimiser steps
        self.skipped = 0  # non-finite steps skipped by step() under nan_policy=skip
        self.last_grad_norm = torch.zeros((), device=self.device)
        # The finite check: read on the host after every step (check_every=1), or kept on the
        # device and read every check_every steps by settle() where the optimisers can skip an
        # update on a device flag (fused Adam/AdamW; not under the fp16 scaler, which owns it).
        self.check_every = max(int(check_every), 1)
        self.deferred = (
            self.check_every > 1
            and not self.scaler.is_enabled()
            and all(_takes_found_inf(o) for o in (self.opt, self.t_opt) if o is not None)
        )
        self.last_good = torch.ones((), dtype=torch.bool, device=self.device)
        self._pending: list[Callable[[str], str] | None] = []  # fault_message per unread step
        self._reset_pending()
        for cb in self.callbacks:
            cb.on_train_start(self)

    @classmethod
    def from_config(
        cls,
        config: TrainConfig | Mapping[str, Any] | str | Path,
        *,
        device: torch.device | str | None = None,
        callbacks: Iterable[Callback] = (),
    ) -> TrainingStep:
        """The step ``medspikeformer train`` would run for ``config`` (a TrainConfig, a partial
        nested dict or a YAML path), with the RNGs seeded from ``train.seed`` as a run seeds
        them; ``device`` overrides ``train.device``. No run directory, no data."""
        if isinstance(config, (str, Path)):
            config = load_config(config)
        elif isinstance(config, Mapping):
            config = config_from_dict(config)
        validate_config(config, check_model=False)
        seed_everything(config.train.seed)
        step = cls(config, device=device, callbacks=callbacks)
        step.train()
        return step

    # -------------------------------------------------------------- set-up helpers
    def _load_frozen_teacher(self, path: Path) -> SegmentationModel:
        ckpt = ckpt_mod.load_checkpoint(path)
        twin = build_teacher(self.student)
        student_desc = f"student {self.student.model_name!r} (config {self.student.config})"
        if ckpt["model_name"] != twin.model_name:
            raise CheckpointError(
                f"{path}: teacher checkpoint holds model {ckpt['model_name']!r}, but the teacher of "
                f"{student_desc} must be its ANN twin {twin.model_name!r}"
            )
        ckpt_mod.load_state_dict_checked(
            twin,
            ckpt["state_dict"],
            source=f"teacher checkpoint {path} (model {ckpt['model_name']!r}, config {ckpt['model_config']})",
            target=f"the ANN twin of {student_desc} — widths/units must match",
        )
        twin.to(self.device).eval()
        for p in twin.parameters():
            p.requires_grad_(False)
        return twin

    def wrap(self, *, ddp: bool = False, compile: bool = False) -> None:
        """DDP and/or ``torch.compile`` around the forwards (after weights were loaded)."""
        cfg = self.cfg
        if ddp:
            # Stage heads get gradients only from the alignment loss / stage supervision; when some
            # of them are unused DDP must be told to look for unused parameters.
            all_aligned = self.align_loss is not None and cfg.teacher.align.stages is None
            ddp_kw: dict[str, Any] = {}
            if self.device.type == "cuda":
                ddp_kw["device_ids"] = [self.device.index]
            self.student_fwd = nn.parallel.DistributedDataParallel(
                self.student_fwd,
                find_unused_parameters=not (all_aligned or cfg.train.stage_supervision > 0),
                **ddp_kw,
            )
            if self.teacher_fwd is not None:
                self.teacher_fwd = nn.parallel.DistributedDataParallel(
                    self.teacher_fwd,
                    find_unused_parameters=not cfg.teacher.stage_supervision > 0,
                    **ddp_kw,
                )
        if compile:
            self.student_fwd = self._try_compile(self.student_fwd)
            if self.teacher_fwd is not None:
                self.teacher_fwd = self._try_compile(self.teacher_fwd)

    def _try_compile(self, module: nn.Module) -> nn.Module:
        """``torch.compile(module)`` after a trial step that succeeded, else ``module`` with a
        one-line warning (any compiler failure: no C++ compiler, an untraceable op)."""
        try:
            compiled = torch.compile(module, mode=self.cfg.train.compile_mode)
            self._compile_trial(compiled, module)
            return compiled
        except Exception as exc:  # graceful fallback: any compiler failure
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"torch.compile failed, training eagerly: {first}", stacklevel=2)
            return module

    def _compile_trial(self, compiled: nn.Module, module: nn.Module) -> None:
        """One forward and backward of what training runs — train mode, the run's batch shape
        and layout, autocast — so that a form the compiler cannot trace (e.g. the attention
        recomputation that only large training batches switch on) fails here and not at the
        first step. The compiled graphs are the ones training then reuses. BatchNorm statistics,
        gradients and the RNG state are put back: the trial leaves no trace in the run."""
        t, size = self.cfg.train, self.cfg.data.size
        x = torch.zeros(t.batch_size, self.student.in_channels, size, size, device=self.device)
        x = x.contiguous(memory_format=self.memory_format)
        saved = [(b, b.detach().clone()) for b in module.buffers()]
        was_training = module.training
        rng_devices = [self.device] if self.device.type == "cuda" else []
        module.train()
        try:
            with torch.random.fork_rng(devices=rng_devices):
                with self.autocast():
                    out = compiled(x)
                total = out.logits.float().sum() + sum(s.float().sum() for s in out.stage_logits)
                total.backward()
        finally:
            module.train(was_training)
            with torch.no_grad():
                for buf, value in saved:
                    buf.copy_(value)
            for p in module.parameters():
                p.grad = None

    def add_loss_term(self, name: str, fn: LossTermFn, weight: float = 1.0) -> None:
        """Add ``weight · fn(outputs)`` to the student's objective, logged as ``train_<name>``.

        ``fn`` gets the step's :class:`StepOutputs` and returns a scalar tensor (on the device).
        """
        if name in self.extra_terms or name in _BUILTIN_TERMS:
            raise ValueError(f"loss term {name!r} exists already")
        self.extra_terms[name] = (fn, float(weight))

    def train(self) -> None:
        """Training mode for the student (and a joint teacher); a frozen teacher stays in eval."""
        self.student_fwd.train()
        if self.teacher is not None:
            self.teacher.train(self.teacher_mode == "joint")

    # -------------------------------------------------------------- the step
    def autocast(self) -> Any:
        """Autocast of the run's precision around forward passes (losses are float32 anyway)."""
        return autocast(self.device, self.precision)

    def to_device(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and mask on the device: asynchronous copies from pinned memory on CUDA."""
        x = batch["image"].to(self.device, non_blocking=True)
        if self.memory_format is torch.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, batch["mask"].to(self.device, non_blocking=True)

    def loss_step(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Forward passes (under the run's autocast) and every loss term, all on the device.

        Returns the terms by name (scalar tensors, nothing read to the host): those of
        :data:`LOSS_TERMS` (``bce``, ``dice``, ``stage_sup``, ``align_kl``, ``align_l2``,
        ``align``, ``teacher_seg``, ``teacher_stage``), the extra terms, ``total`` (the student's
        objective) and ``teacher_total`` (the joint teacher's objective; zero without one).
        Inactive terms are zeros.
        """
        x, y = self.to_device(batch)
        zero = torch.zeros((), device=self.device)
        t_out: SegmentationOutput | None = None
        with self.autocast():
            out = self.student_fwd(x)
            if self.teacher_fwd is not None:
                t_out = self.teacher_fwd(x)
            elif self.teacher is not None:
                with torch.no_grad():
                    t_stage_out = self.teacher.forward_all(x, attention=False).stage_logits
        # Losses outside autocast, in float32 (the loss modules upcast bf16/fp16 inputs).
        if t_out is not None:
            t_stages = [s.detach().float() for s in t_out.stage_logits]
        elif self.teacher is not None:
            t_stages = [s.float() for s in t_stage_out]
        else:
            t_stages = []
        outputs = StepOutputs(x, y, out, t_stages, teacher=t_out)
        terms: dict[str, torch.Tensor] = {}
        objectives: dict[str, torch.Tensor | None] = {"student": None, "teacher": None}
        for term in LOSS_TERMS:
            if not term.active(self):
                terms[term.name] = zero
                continue
            value = terms[term.name] = term.compute(self, outputs)
            if term.objective is not None:
                weight = term.weight(self.cfg)
                weighted = value if weight == 1.0 else weight * value
                so_far = objectives[term.objective]
                objectives[term.objective] = weighted if so_far is None else so_far + weighted
        total = objectives["student"] if objectives["student"] is not None else zero
        for name, (fn, weight) in self.extra_terms.items():
            terms[name] = fn(outputs)
            total = total + weight * terms[name]
        terms["total"] = total
        teacher_total = objectives["teacher"]
        terms["teacher_total"] = teacher_total if teacher_total is not None else zero
        return terms

    def inactive_terms(self) -> list[str]:
        """Names of the built-in terms this step does not compute (``metrics.csv`` shows NaN)."""
        return [term.name for term in LOSS_TERMS if not term.active(self)]

    def _stateful(self) -> list[nn.Module]:
        return [self.student] + ([self.teacher] if self.teacher_mode == "joint" else [])

    def snapshot_buffers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Copies of every buffer (BatchNorm statistics), for a skipped step to restore: the
        forward pass updates them, and a non-finite batch would poison them for good."""
        return [(b, b.detach().clone()) for m in self._stateful() for b in m.buffers()]

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        if self.t_opt is not None:
            self.t_opt.zero_grad(set_to_none=True)

    def optimizer_step(
        self,
        terms: Mapping[str, torch.Tensor],
        *,
        restore: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        read_loss: bool = False,
    ) -> StepVerdict:
        """Backward of ``total + teacher_total``, clipping, the finite check and the update.

        The one host read is the verdict "all finite" (plus ``total`` with ``read_loss``). A
        non-finite loss or gradient skips the update: gradients are dropped and the buffers put
        back from ``restore`` (:meth:`snapshot_buffers`); the verdict says so and the caller
        applies its policy (raise or count). Under fp16 an overflowing gradient is the scaler's
        business (it skips that update on the device and lowers the scale), not a fault.
        """
        cfg, scaler = self.cfg, self.scaler
        total = terms["total"]
        t_total = terms["teacher_total"]
        scaler.scale(total + t_total).backward()
        # fp16: gradients back to their true scale before norms and clipping (no-op otherwise).
        scaler.unscale_(self.opt)
        if self.t_opt is not None:
            scaler.unscale_(self.t_opt)
        self.last_grad_norm = grad_norm(self._s_params, cfg.optim.grad_clip, self.device)
        t_norm = None
        if self.t_opt is not None:
            t_norm = grad_norm(self._t_params, cfg.optim.grad_clip, self.device)
        checked = [total.detach(), t_total.detach()]
        if not scaler.is_enabled():
            checked += [self.last_grad_norm] + ([t_norm] if t_norm is not None else [])
        bad_flag = (~torch.isfinite(torch.stack([c.float() for c in checked])).all()).float()
        if self.dist is not None and self.dist.enabled:
            bad_flag = all_reduce_sum(bad_flag.reshape(1), self.dist).reshape(())
        if self.deferred:
            return self._masked_update(terms, bad_flag, restore, read_loss)
        self.last_good = bad_flag == 0
        loss_value = None
        if read_loss:
            bad_value, loss_value = torch.stack([bad_flag, total.detach().float()]).tolist()
        else:
            bad_value = bad_flag.item()
        if bad_value > 0:
            with torch.no_grad():
                for buf, value in restore or []:
                    buf.copy_(value)
            self.zero_grad()
            if scaler.is_enabled():
                scaler.update()  # closes this step's unscale_ (and lowers the scale)
            return StepVerdict(False, loss_value)
        # Fused Adam takes the scaler's found-inf flag on the device: no read in step().
        scaler.step(self.opt)
        if self.t_opt is not None:
            scaler.step(self.t_opt)
        scaler.update()
        self.steps += 1
        for cb in self.callbacks:
            cb.on_step_end(self.steps, terms)
        return StepVerdict(True, loss_value)

    def _masked_update(
        self,
        terms: Mapping[str, torch.Tensor],
        bad_flag: torch.Tensor,
        restore: list[tuple[torch.Tensor, torch.Tensor]] | None,
        read_loss: bool,
    ) -> StepVerdict:
        """The update of a deferred check, with no host read: the fused optimisers skip it on
        the device flag (as they do for the fp16 scaler's found-inf), the buffers are put back
        under the same flag, and the first non-finite step's values are kept for settle()."""
        bad = (bad_flag > 0).float()  # 0/1 (a DDP sum may exceed 1; the optimiser subtracts it)
        opts = [o for o in (self.opt, self.t_opt) if o is not None]
        for opt in opts:
            opt.found_inf = bad
        try:
            for opt in opts:
                opt.step()
        finally:
            for opt in opts:
                del opt.found_inf
        self.last_good = bad == 0
        if restore:
            with torch.no_grad():
                for buf, value in restore:
                    buf.copy_(torch.where(self.last_good, buf, value))
        values = [terms[k].detach().float() for k in _DESCRIBED] + [self.last_grad_norm.float()]
        first = (bad > 0) & (self._bad_count == 0)
        self._pending.append(None)
        self._first_at = torch.where(first, float(len(self._pending)), self._first_at)
        self._first_values = torch.where(first, torch.stack(values), self._first_values)
        self._bad_count += bad
        self.steps += 1  # provisional until settle() subtracts the skipped ones
        for cb in self.callbacks:
            cb.on_step_end(self.steps, terms)
        loss = float(terms["total"].detach()) if read_loss else None
        return StepVerdict(None, loss)

    def _reset_pending(self) -> None:
        self._pending = []
        self._bad_count = torch.zeros((), device=self.device)
        self._first_at = torch.zeros((), device=self.device)
        self._first_values = torch.zeros(len(_DESCRIBED) + 1, device=self.device)

    def settle(self) -> int:
        """Read the deferred finite check of the steps since the last read (one host read; none
        when nothing is pending). A non-finite step raises NumericalError under
        ``nan_policy=stop`` (with the ``fault_message`` of that step) and is counted in
        ``skipped`` under ``skip``; returns how many were skipped."""
        if not self._pending:
            return 0
        read = torch.cat([torch.stack([self._bad_count, self._first_at]), self._first_values])
        bad, first_at, *values = read.tolist()
        messages = self._pending
        self._reset_pending()
        if bad == 0:
            return 0
        count = int(bad)
        self.steps -= count
        if self.cfg.train.nan_policy != "skip":
            what = _describe(values)
            fault_message = messages[int(first_at) - 1]
            what = fault_message(what) if fault_message is not None else what
            raise NumericalError(f"{what}; set train.nan_policy=skip to skip such steps")
        self.skipped += count
        return count

    def describe_nonfinite(self, terms: Mapping[str, torch.Tensor]) -> str:
        """The values of a non-finite step, for the error (reads them: failure path only)."""
        values = [float(terms[k].detach()) for k in _DESCRIBED] + [float(self.last_grad_norm)]
        return _describe(values)

    def step(
        self,
        batch: Mapping[str, Any],
        *,
        read_loss: bool = False,
        fault_message: Callable[[str], str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One training step on ``batch`` (``{"image" [B,C,H,W], "mask" [B,1,H,W]}``); returns the
        loss terms (device tensors); ``self.last_verdict`` says whether it was applied and
        ``self.last_good`` holds the same on the device. A non-finite step raises NumericalError
        under ``train.nan_policy=stop`` (``fault_message`` may put the description into context,
        e.g. epoch and step) and is skipped under ``skip`` (``self.skipped`` counts it). With a
        deferred check both happen at the read every ``check_every`` steps (:meth:`settle`; a
        loop calls it at the end of its epoch too)."""
        skip = self.cfg.train.nan_policy == "skip"
        saved = self.snapshot_buffers() if skip else []
        self.zero_grad()
        terms = self.loss_step(batch)
        verdict = self.optimizer_step(terms, restore=saved, read_loss=read_loss)
        self.last_verdict = verdict
        if verdict.applied is None:  # deferred: read every check_every steps
            self._pending[-1] = fault_message
            if len(self._pending) >= self.check_every:
                self.settle()
            return terms
        if not verdict.applied:
            if not skip:
                what = self.describe_nonfinite(terms)
                what = fault_message(what) if fault_message is not None else what
                raise NumericalError(f"{what}; set train.nan_policy=skip to skip such steps")
            self.skipped += 1
        return terms

    __call__ = step


def _takes_found_inf(opt: torch.optim.Optimizer) -> bool:
    """Whether ``opt.step()`` skips its update on a device flag ``opt.found_inf`` (PyTorch's
    fused Adam/AdamW: the form the gradient scaler drives), so that no host read is needed."""
    return isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)) and all(
        g.get("fused") for g in opt.param_groups
    )


def _describe(values: list[float]) -> str:
    """The error text of a non-finite step from its ``_DESCRIBED`` values and gradient norm."""
    named = ", ".join(f"{k}={v:.4g}" for k, v in zip(_DESCRIBED, values))
    return f"non-finite loss or gradient ({named}, grad_norm={values[-1]:.4g})"


#: Terms of :meth:`TrainingStep.loss_step` that enter the backward but are not logged (the joint
#: teacher's objective is logged as its parts ``teacher_seg`` and ``teacher_stage``).
UNLOGGED_TERMS = frozenset({"teacher_total"})


@dataclass(frozen=True)
class LossTerm:
    """One built-in term of the step's objectives, declared once in :data:`LOSS_TERMS`.

    Attributes:
        name: logged as ``train_<name>`` in ``metrics.csv``.
        compute: ``(step, outputs) -> scalar tensor`` on the device.
        objective: ``"student"`` (added to ``total``), ``"teacher"`` (to ``teacher_total``) or
            ``None`` (logged only: a part of another term).
        weight: ``config -> factor`` in its objective.
        active: ``step -> bool``; an inactive term is a zero in the step and NaN in metrics.csv.
    """

    name: str
    compute: Callable[[TrainingStep, StepOutputs], torch.Tensor]
    objective: str | None = "student"
    weight: Callable[[TrainConfig], float] = lambda cfg: 1.0
    active: Callable[[TrainingStep], bool] = lambda step: True


def _seg_parts(step: TrainingStep, out: StepOutputs) -> dict[str, torch.Tensor]:
    """The segmentation loss's parts (``bce``, ``dice``), computed once per step."""
    if out.cache.get("seg") is None:
        out.cache["seg"] = step.seg_loss.components(out.student.logits, out.mask)
    return out.cache["seg"]


def _align_parts(step: TrainingStep, out: StepOutputs) -> dict[str, torch.Tensor]:
    """The alignment loss's parts (``kl``, ``l2``), computed once per step."""
    if out.cache.get("align") is None:
        stages = [s.float() for s in out.student.stage_logits]
        out.cache["align"] = step.align_loss.components(stages, out.teacher_stages)
    return out.cache["align"]


def _align(step: TrainingStep, out: StepOutputs) -> torch.Tensor:
    parts, loss = _align_parts(step, out), step.align_loss
    zero = torch.zeros((), device=step.device)
    return (parts["kl"] if loss.use_kl else zero) + (parts["l2"] if loss.use_l2 else zero)


def _teacher_stage(step: TrainingStep, out: StepOutputs) -> torch.Tensor:
    if step.cfg.teacher.stage_supervision > 0:
        return stage_supervision_loss(step.seg_loss, out.teacher.stage_logits, out.mask)
    return torch.zeros((), device=step.device)


def _aligned(step: TrainingStep) -> bool:
    return step.align_loss is not None


def _joint(step: TrainingStep) -> bool:
    return step.teacher_fwd is not None


#: The built-in loss terms, in the order they are computed and summed (the one place to add
#: one: an entry here, plus its weight's option in the config).
LOSS_TERMS: tuple[LossTerm, ...] = (
    LossTerm("bce", lambda step, out: _seg_parts(step, out)["bce"]),  # Eq. 13
    LossTerm("dice", lambda step, out: _seg_parts(step, out)["dice"]),
    LossTerm(
        "stage_sup",
        lambda step, out: stage_supervision_loss(step.seg_loss, out.student.stage_logits, out.mask),
        weight=lambda cfg: cfg.train.stage_supervision,
        active=lambda step: step.cfg.train.stage_supervision > 0,
    ),
    LossTerm("align_kl", lambda step, out: _align_parts(step, out)["kl"], None, active=_aligned),
    LossTerm("align_l2", lambda step, out: _align_parts(step, out)["l2"], None, active=_aligned),
    LossTerm(  # Eq. 12
        "align", _align, weight=lambda cfg: cfg.teacher.align.weight, active=_aligned
    ),
    LossTerm(
        "teacher_seg",
        lambda step, out: step.seg_loss(out.teacher.logits, out.mask),
        "teacher",
        active=_joint,
    ),
    LossTerm(
        "teacher_stage",
        _teacher_stage,
        "teacher",
        weight=lambda cfg: cfg.teacher.stage_supervision,
        active=_joint,
    ),
)

_BUILTIN_TERMS = (*(term.name for term in LOSS_TERMS), "total", "teacher_total")


def run_steps(
    config: TrainConfig | Mapping[str, Any] | str | Path,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Run the real training step of ``config`` over ``batches``; returns the last step's terms
    (device tensors). See :meth:`TrainingStep.from_config`."""
    step = TrainingStep.from_config(config, device=device)
    terms: dict[str, torch.Tensor] = {}
    for batch in batches:
        terms = step(batch)
    return terms
