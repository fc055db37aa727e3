"""The training loop: student (+ optional ANN teacher), validation, checkpoints, resume, DDP.

Per step (DESIGN.md Sec. 1, "ANN teacher and distribution alignment")::

    out   = student(x)                                  # SegmentationOutput (train mode)
    L_seg = BCE(out.logits, y) + Dice(out.logits, y)    # Eq. 13
    joint teacher:   t = teacher(x);  L_teacher = L_seg(t.logits, y)   (own optimiser)
    frozen teacher:  t = teacher.forward_all(x) under no_grad
    L_align = AlignmentLoss(out.stage_logits, detach(t.stage_logits))   # Eq. 12
    L_total = L_seg + λ_align · L_align                  # student's objective

Both objectives are summed for one backward pass; since the teacher's stage maps enter the student's
loss detached, the student's gradients come only from ``L_total`` and the teacher's only from
``L_teacher``.

Every epoch: train → validate (global-confusion mIoU etc.) → scheduler step → metrics.csv row →
``best.pt`` (if val mIoU improved) → ``last.pt`` (with the full resume state). ``--resume`` restores
model, optimisers, scheduler, RNG states, early-stopping state and history, and continues with the
next epoch; the data order of epoch e depends only on (seed, e), and every epoch re-seeds the RNGs
from (seed, e, rank), so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler

from medspikeformer.engine import checkpoint as ckpt_mod
from medspikeformer.engine.config import (
    TrainConfig,
    build_model_from_config,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
    validate_config,
)
from medspikeformer.engine.distributed import (
    DistInfo,
    ShardSampler,
    all_reduce_sum,
    barrier,
    gather_objects,
    init_distributed,
    shutdown_distributed,
)
from medspikeformer.engine.run_dir import (
    RunLock,
    collect_versions,
    ensure_writable_dir,
    write_json,
    write_metrics_csv,
)
from medspikeformer.errors import CheckpointError, ConfigError, NumericalError
from medspikeformer.losses import AlignmentLoss, BCEDiceLoss
from medspikeformer.precision import autocast, make_grad_scaler, resolve_precision

__all__ = ["resolve_device", "resolve_teacher_mode", "train"]

LOSS_TERMS = (
    "bce",
    "dice",
    "stage_sup",
    "align_kl",
    "align_l2",
    "align",
    "teacher_seg",
    "teacher_stage",
    "total",
)

#: Seconds between progress-bar loss updates: each update reads the loss from the device.
PROGRESS_INTERVAL_S = 1.0


def stage_supervision_loss(
    seg_loss: BCEDiceLoss, stage_logits: list[torch.Tensor], target: torch.Tensor
) -> torch.Tensor:
    """Deep supervision of stage mask heads: mean over stages of ``L_seg(stage_i, y↓_i)``.

    ``y↓_i`` is the mask ``[B,1,H,W]`` resized to the stage's ``[h_i, w_i]`` by nearest-neighbour
    (stays binary). Used for the joint teacher's stage heads (their maps are the alignment targets)
    and, optionally, for a model's own heads (``train.stage_supervision``).
    """
    if not stage_logits:
        return torch.zeros((), device=target.device)
    terms = []
    for s in stage_logits:
        y = (
            target
            if s.shape[-2:] == target.shape[-2:]
            else F.interpolate(target, size=s.shape[-2:], mode="nearest")
        )
        terms.append(seg_loss(s.float(), y))
    return torch.stack(terms).mean()


# ----------------------------------------------------------------------------- small helpers


def resolve_device(name: str, dist_info: DistInfo | None = None) -> torch.device:
    """``auto`` → ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    local = dist_info.local_rank if dist_info else 0
    if name == "auto":
        return torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    if name == "cuda":
        return torch.device("cuda", local)
    return torch.device(name)


def resolve_teacher_mode(config: TrainConfig) -> str:
    """``auto`` → ``joint`` for the medspikeformer family (spiking, with a twin), ``none`` otherwise."""
    mode = config.teacher.mode
    if mode != "auto":
        return mode
    return "joint" if config.model.name.startswith("medspikeformer") else "none"


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A distinct 63-bit seed per (seed, epoch, rank), stable across runs and resumes."""
    return int(
        np.random.SeedSequence([seed, epoch, rank]).generate_state(2, np.uint32).view(np.uint64)[0]
        >> 1
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """RNG states of python, numpy and torch as tensors/primitives (loadable with weights_only)."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    out: dict[str, Any] = {
        "python": {"version": version, "state": list(state), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _segmentation_output(out: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(logits, stage_logits) from a model's train-mode output (SegmentationOutput or a tensor)."""
    if isinstance(out, torch.Tensor):
        return out, []
    return out.logits, list(out.stage_logits or [])


def _grad_norm(
    params: list[nn.Parameter], clip: float | None, device: torch.device | None = None
) -> torch.Tensor:
    """Global gradient norm (clipping to ``clip`` first when given), a device tensor: no read."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    if clip is not None:
        return nn.utils.clip_grad_norm_(params, clip, error_if_nonfinite=False)
    return nn.utils.get_total_norm(grads)


def _progress(iterable: Any, *, enabled: bool, desc: str, total: int | None = None) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)


def _fused_ok(params: list[torch.Tensor]) -> bool:
    """PyTorch's fused Adam/AdamW kernel takes float parameters on CPU and CUDA (one kernel for
    all parameters: 2.4 ms instead of 16–33 ms per step for MedSpikeFormer's 87 tensors on CPU)."""
    return bool(params) and all(
        p.device.type in ("cpu", "cuda")
        and p.dtype in (torch.float32, torch.float16, torch.bfloat16)
        for p in params
    )


def _build_optimizer(params: Any, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name in ("adam", "adamw"):
        params = list(params)
        grouped = bool(params) and isinstance(params[0], dict)
        flat = [p for g in params for p in g["params"]] if grouped else params
        cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
        return cls(
            params,
            lr=lr,
            betas=tuple(o.betas),
            weight_decay=o.weight_decay,
            fused=True if _fused_ok(flat) else None,
        )
    return torch.optim.SGD(params, lr=lr, momentum=o.betas[0], weight_decay=o.weight_decay)


def _build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    s = cfg.scheduler
    if s.name == "plateau":
        mode = "min" if s.monitor == "val_loss" else "max"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=s.factor, patience=s.patience, min_lr=s.min_lr
        )
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=cfg.train.epochs, eta_min=s.min_lr
        )
    return None


# ----------------------------------------------------------------------------- state


@dataclass
class LoopState:
    """What survives between epochs (and is saved in last.pt for --resume)."""

    epoch: int = 0  # last finished epoch (1-based); 0 = none yet
    best_miou: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    nan_skipped: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "best_miou": self.best_miou,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "nan_skipped": self.nan_skipped,
            "history": self.history,
        }


class _Run:
    """One training run (single process or one DDP rank)."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume_dir: Path | None,
        log: Callable[[str], None] | None,
    ):
        self.cfg = config
        self.resume_dir = resume_dir
        t = config.train
        device_type = (
            "cuda"
            if (t.device.startswith("cuda") or (t.device == "auto" and torch.cuda.is_available()))
            else "cpu"
        )
        self.dist = init_distributed(device_type)
        self.device = resolve_device(t.device, self.dist)
        self.main = self.dist.is_main
        self._log = log if log is not None else (lambda msg: print(msg, flush=True))
        self.show_progress = bool(t.progress and self.main and sys.stderr.isatty())
        self.precision = resolve_precision(t.precision, self.device)
        # Enabled for fp16 only; for fp32/bf16 its scale/step/update are plain pass-throughs.
        self.scaler = make_grad_scaler(self.device, self.precision)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.teacher_mode = resolve_teacher_mode(config)
        self.state = LoopState()
        self.lock: RunLock | None = None
        self._saved_det: tuple[bool, bool] | None = None
        self._saved_cudnn_benchmark: bool | None = None

    def log(self, msg: str) -> None:
        if self.main:
            self._log(msg)

    # -------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg = self.cfg
        if cfg.train.deterministic:
            self._saved_det = (
                torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.benchmark,
            )
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            # Fixed input sizes: let cuDNN time its convolution algorithms once and keep the best.
            self._saved_cudnn_benchmark = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = True
        out = cfg.out or f"runs/{cfg.data.dataset}-{cfg.model.name}"
        self.run_dir = Path(out)
        if self.main:
            ensure_writable_dir(self.run_dir)
            self.lock = RunLock(self.run_dir).acquire()
        barrier(self.dist)
        if self.resume_dir is None and (self.run_dir / "last.pt").is_file():
            # Starting afresh would overwrite best.pt/last.pt of the run already there.
            raise ConfigError(
                f"{self.run_dir}: already holds a training run (last.pt); continue it with "
                f"`medspikeformer train --resume {self.run_dir}` or choose another --out"
            )

        seed_everything(cfg.train.seed)
        # Model(s).
        self.student = build_model_from_config(cfg).to(
            self.device, memory_format=self.memory_format
        )
        divisor = int(getattr(self.student, "size_divisor", 1))
        if cfg.data.size % divisor:
            raise ConfigError(
                f"config value data.size={cfg.data.size} is not divisible by {divisor}, "
                f"which model {cfg.model.name!r} needs"
            )
        self.teacher: nn.Module | None = None
        if self.teacher_mode == "joint":
            from medspikeformer.models import build_teacher

            self.teacher = build_teacher(self.student).to(
                self.device, memory_format=self.memory_format
            )
        elif self.teacher_mode != "none":
            self.teacher = self._load_frozen_teacher(Path(self.teacher_mode))
        self.align_loss = None
        if self.teacher is not None:
            a = cfg.teacher.align
            self.align_loss = AlignmentLoss(
                kl=a.kl, use_kl=a.use_kl, use_l2=a.use_l2, stages=a.stages
            )
        self.seg_loss = BCEDiceLoss()

        # Data.
        self._build_data()

        # Optimisation.
        self.opt = _build_optimizer(self.student.parameters(), cfg, cfg.optim.lr)
        self.sched = _build_scheduler(self.opt, cfg)
        self.t_opt = None
        if self.teacher_mode == "joint":
            self.t_opt = _build_optimizer(
                self.teacher.parameters(), cfg, cfg.teacher.lr or cfg.optim.lr
            )

        if self.resume_dir is not None:
            self._restore(self.resume_dir / "last.pt")

        # Wrappers (after loading weights into the plain modules).
        self.student_fwd: nn.Module = self.student
        self.teacher_fwd: nn.Module | None = self.teacher
        if self.dist.enabled:
            # Stage heads get gradients only from the alignment loss / stage supervision; when some
            # of them are unused DDP must be told to look for unused parameters.
            all_aligned = self.align_loss is not None and cfg.teacher.align.stages is None
            ddp_kw: dict[str, Any] = {}
            if self.device.type == "cuda":
                ddp_kw["device_ids"] = [self.device.index]
            self.student_fwd = nn.parallel.DistributedDataParallel(
                self.student,
                find_unused_parameters=not (all_aligned or cfg.train.stage_supervision > 0),
                **ddp_kw,
            )
            if self.teacher_mode == "joint":
                self.teacher_fwd = nn.parallel.DistributedDataParallel(
                    self.teacher,
                    find_unused_parameters=not cfg.teacher.stage_supervision > 0,
                    **ddp_kw,
                )
        if cfg.train.compile:
            self.student_fwd = self._try_compile(self.student_fwd)
            if self.teacher_mode == "joint" and self.teacher_fwd is not None:
                self.teacher_fwd = self._try_compile(self.teacher_fwd)

        if self.main:
            save_config(cfg, self.run_dir / "config.yaml")
            self.train_set.save_split(self.run_dir / "split.json")
            write_json(self.run_dir / "versions.json", collect_versions())

    def _build_data(self) -> None:
        from medspikeformer.data import build_dataset

        d, t = self.cfg.data, self.cfg.train
        in_ch = int(getattr(self.student, "in_channels", d.in_channels or 3))
        common = {
            "root": d.root,
            "size": d.size,
            "split_spec": d.split_spec,
            "in_channels": in_ch,
            "cache_dir": d.cache_dir,
            "seed": t.seed,
            **d.options,
        }
        if d.split_spec is None:
            common.pop("split_spec")
        self.train_set = build_dataset(
            d.dataset, split=d.train_split, augment=d.augment or "none", **common
        )
        self.val_set = build_dataset(d.dataset, split=d.val_split, augment="none", **common)
        if len(self.train_set) == 0:
            raise ConfigError(f"dataset {d.dataset!r}: the {d.train_split!r} split is empty")
        if len(self.val_set) == 0:
            raise ConfigError(f"dataset {d.dataset!r}: the {d.val_split!r} split is empty")
        self.train_sampler = DistributedSampler(
            self.train_set,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=t.seed,
            drop_last=False,
        )
        pin = self.device.type == "cuda"
        self.train_loader = DataLoader(
            self.train_set,
            batch_size=t.batch_size,
            sampler=self.train_sampler,
            num_workers=d.num_workers,
            pin_memory=pin,
            drop_last=False,
        )
        self.val_loader = DataLoader(
            self.val_set,
            batch_size=t.val_batch_size or t.batch_size,
            sampler=ShardSampler(len(self.val_set), self.dist.rank, self.dist.world_size),
            num_workers=d.num_workers,
            pin_memory=pin,
        )

    def _load_frozen_teacher(self, path: Path) -> nn.Module:
        from medspikeformer.models import build_teacher

        ckpt = ckpt_mod.load_checkpoint(path)
        twin = build_teacher(self.student)
        twin_name = getattr(twin, "model_name", type(twin).__name__)
        student_desc = f"student {self.student.model_name!r} (config {self.student.config})"
        if ckpt["model_name"] != twin_name:
            raise CheckpointError(
                f"{path}: teacher checkpoint holds model {ckpt['model_name']!r}, but the teacher of "
                f"{student_desc} must be its ANN twin {twin_name!r}"
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

    def _try_compile(self, module: nn.Module) -> nn.Module:
        try:
            compiled = torch.compile(module, mode=self.cfg.train.compile_mode)
            d = self.cfg.data
            in_ch = int(getattr(self.student, "in_channels", 3))
            x = torch.zeros(1, in_ch, d.size, d.size, device=self.device)
            module.eval()
            with torch.no_grad(), self._autocast():
                compiled(x.contiguous(memory_format=self.memory_format))
            module.train()
            return compiled
        except Exception as exc:  # graceful fallback: any compiler failure
            module.train()
            warnings.warn(
                f"torch.compile failed, training eagerly: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                stacklevel=2,
            )
            return module

    # -------------------------------------------------------------- resume
    def _restore(self, path: Path) -> None:
        ck = ckpt_mod.load_checkpoint(path)
        res = ck.get("resume")
        if not isinstance(res, dict):
            raise CheckpointError(f"{path}: holds no resume state (only last.pt can be resumed)")
        ckpt_mod.load_state_dict_checked(
            self.student,
            ck["state_dict"],
            source=f"{path} (model {ck['model_name']!r})",
            target=f"model {self.cfg.model.name!r} of {self.resume_dir / 'config.yaml'}",
        )
        self.opt.load_state_dict(res["optimizer"])
        if self.sched is not None and res.get("scheduler") is not None:
            self.sched.load_state_dict(res["scheduler"])
        if self.teacher_mode == "joint":
            if res.get("teacher_state_dict") is None:
                raise CheckpointError(f"{path}: no joint-teacher state to resume from")
            self.teacher.load_state_dict(res["teacher_state_dict"])
            self.t_opt.load_state_dict(res["teacher_optimizer"])
        if self.scaler.is_enabled() and res.get("grad_scaler"):
            self.scaler.load_state_dict(res["grad_scaler"])
        loop = res["loop"]
        self.state = LoopState(
            epoch=int(loop["epoch"]),
            best_miou=float(loop["best_miou"]),
            best_epoch=int(loop["best_epoch"]),
            bad_epochs=int(loop["bad_epochs"]),
            nan_skipped=int(loop["nan_skipped"]),
            history=list(loop["history"]),
        )
        rngs = res.get("rng") or []
        if rngs:
            same_world = int(res.get("world_size", 1)) == self.dist.world_size
            restore_rng(rngs[self.dist.rank] if same_world else rngs[0])
        self.log(f"resumed {self.resume_dir} after epoch {self.state.epoch}")

    def _payload(self, metrics: dict[str, Any], *, with_resume: bool) -> dict[str, Any]:
        payload = ckpt_mod.build_payload(
            self.student,
            epoch=self.state.epoch,
            metrics=metrics,
            train_config=config_to_dict(self.cfg),
        )
        if with_resume:
            payload["resume"] = {
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict() if self.sched is not None else None,
                "teacher_mode": self.teacher_mode,
                "teacher_model_name": getattr(self.teacher, "model_name", None)
                if self.teacher_mode == "joint"
                else None,
                "teacher_state_dict": {
                    k: v.detach().cpu() for k, v in self.teacher.state_dict().items()
                }
                if self.teacher_mode == "joint"
                else None,
                "teacher_optimizer": self.t_opt.state_dict() if self.t_opt is not None else None,
                "rng": self._rng_all,
                # fp16's loss scale (plain numbers); None for fp32/bf16.
                "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "world_size": self.dist.world_size,
                "data_order": {
                    "sampler": "DistributedSampler",
                    "seed": self.cfg.train.seed,
                    "next_epoch": self.state.epoch + 1,
                },
                "loop": self.state.to_dict(),
            }
        return payload

    # -------------------------------------------------------------- epochs
    def _autocast(self) -> Any:
        """Autocast of the run's precision around forward passes (losses are float32 anyway)."""
        return autocast(self.device, self.precision)

    def _to_device(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and mask on the device: asynchronous copies from pinned memory on CUDA."""
        x = batch["image"].to(self.device, non_blocking=True)
        if self.memory_format is torch.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, batch["mask"].to(self.device, non_blocking=True)

    def _forward_losses(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Forward passes (under the run's autocast) and every loss term, all on the device.

        Returns ``(terms, teacher_objective)``: ``terms`` maps each name of :data:`LOSS_TERMS`
        to a scalar tensor (``total`` is the student's objective); nothing is read to the host.
        """
        cfg = self.cfg
        zero = torch.zeros((), device=self.device)
        t_seg = t_stage_sup = zero
        t_stages: list[torch.Tensor] = []
        with self._autocast():
            logits, stages = _segmentation_output(self.student_fwd(x))
            if self.teacher_mode == "joint":
                t_logits, t_stage_out = _segmentation_output(self.teacher_fwd(x))
            elif self.teacher is not None:
                with torch.no_grad():
                    t_stage_out = self.teacher.forward_all(x).stage_logits
        # Losses outside autocast, in float32 (the loss modules upcast bf16/fp16 inputs).
        if self.teacher_mode == "joint":
            t_seg = self.seg_loss(t_logits, y)
            if cfg.teacher.stage_supervision > 0:
                t_stage_sup = stage_supervision_loss(self.seg_loss, t_stage_out, y)
            t_stages = [s.detach().float() for s in t_stage_out]
        elif self.teacher is not None:
            t_stages = [s.float() for s in t_stage_out]
        parts = self.seg_loss.components(logits, y)
        seg = parts["bce"] + parts["dice"]
        stage_sup = zero
        if cfg.train.stage_supervision > 0:
            stage_sup = stage_supervision_loss(self.seg_loss, stages, y)
            seg = seg + cfg.train.stage_supervision * stage_sup
        kl = l2 = align = zero
        if self.align_loss is not None:
            a_parts = self.align_loss.components([s.float() for s in stages], t_stages)
            kl, l2 = a_parts["kl"], a_parts["l2"]
            align = (kl if self.align_loss.use_kl else zero) + (
                l2 if self.align_loss.use_l2 else zero
            )
        terms = {
            "bce": parts["bce"],
            "dice": parts["dice"],
            "stage_sup": stage_sup,
            "align_kl": kl,
            "align_l2": l2,
            "align": align,
            "teacher_seg": t_seg,
            "teacher_stage": t_stage_sup,
            "total": seg + cfg.teacher.align.weight * align,
        }
        return terms, t_seg + cfg.teacher.stage_supervision * t_stage_sup

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        self.student_fwd.train()
        if self.teacher is not None:
            if self.teacher_mode == "joint":
                self.teacher.train()
            else:
                self.teacher.eval()
        self.train_sampler.set_epoch(epoch)
        # Everything a step produces stays on the device; the one host read per step is the
        # verdict "all finite" (plus the loss for the progress bar, in the same read).
        acc_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        sums = torch.zeros(len(LOSS_TERMS), dtype=acc_dtype, device=self.device)
        steps = 0
        skipped = 0
        s_params = [p for p in self.student.parameters() if p.requires_grad]
        t_params = list(self.teacher.parameters()) if self.teacher_mode == "joint" else []
        loader = _progress(
            self.train_loader,
            enabled=self.show_progress,
            desc=f"epoch {epoch}/{cfg.train.epochs} train",
            total=len(self.train_loader),
        )
        skip_policy = cfg.train.nan_policy == "skip"
        stateful = [self.student] + ([self.teacher] if self.teacher_mode == "joint" else [])
        scaler = self.scaler
        last_postfix = -math.inf
        for step, batch in enumerate(loader, 1):
            x, y = self._to_device(batch)
            # A skipped step must not change anything: the forward pass also updates buffers
            # (BatchNorm running statistics), which a non-finite batch would poison for good.
            saved = (
                [(b, b.detach().clone()) for m in stateful for b in m.buffers()]
                if skip_policy
                else []
            )
            self.opt.zero_grad(set_to_none=True)
            if self.t_opt is not None:
                self.t_opt.zero_grad(set_to_none=True)
            terms, t_total = self._forward_losses(x, y)
            total = terms["total"]
            scaler.scale(total + t_total).backward()
            # fp16: gradients back to their true scale before norms and clipping (no-op otherwise).
            scaler.unscale_(self.opt)
            if self.t_opt is not None:
                scaler.unscale_(self.t_opt)
            g_norm = _grad_norm(s_params, cfg.optim.grad_clip, self.device)
            t_norm = _grad_norm(t_params, cfg.optim.grad_clip, self.device) if t_params else None
            checked = [total.detach(), t_total.detach()]
            if not scaler.is_enabled():
                # Under fp16 an overflowing gradient is the scaler's business: it skips that
                # update on the device and lowers the scale. Elsewhere it is a numerical fault.
                checked += [g_norm] + ([t_norm] if t_norm is not None else [])
            bad_flag = (~torch.isfinite(torch.stack([c.float() for c in checked])).all()).float()
            if self.dist.enabled:
                bad_flag = all_reduce_sum(bad_flag.reshape(1), self.dist).reshape(())
            now = time.perf_counter()
            show = self.show_progress and now - last_postfix >= PROGRESS_INTERVAL_S
            if show:
                bad_value, loss_value = torch.stack([bad_flag, total.detach().float()]).tolist()
            else:
                bad_value = bad_flag.item()
            if bad_value > 0:
                what = (
                    f"epoch {epoch} step {step}: non-finite loss or gradient "
                    f"(total={float(total.detach()):.4g}, bce={float(terms['bce'].detach()):.4g}, "
                    f"dice={float(terms['dice'].detach()):.4g}, "
                    f"align={float(terms['align'].detach()):.4g}, "
                    f"teacher_seg={float(terms['teacher_seg'].detach()):.4g}, "
                    f"grad_norm={float(g_norm):.4g})"
                )
                if cfg.train.nan_policy == "stop":
                    last = self.run_dir / "last.pt"
                    kept = (
                        f"last good checkpoint {last} (epoch {self.state.epoch}) kept"
                        if last.exists()
                        else "no checkpoint was written yet"
                    )
                    raise NumericalError(
                        f"{what}; {kept}; set train.nan_policy=skip to skip such steps"
                    )
                skipped += 1
                with torch.no_grad():
                    for buf, value in saved:
                        buf.copy_(value)
                self.opt.zero_grad(set_to_none=True)
                if self.t_opt is not None:
                    self.t_opt.zero_grad(set_to_none=True)
                if scaler.is_enabled():
                    scaler.update()  # closes this step's unscale_ (and lowers the scale)
                continue
            # Fused Adam takes the scaler's found-inf flag on the device: no read in step().
            scaler.step(self.opt)
            if self.t_opt is not None:
                scaler.step(self.t_opt)
            scaler.update()
            sums += torch.stack([terms[k].detach() for k in LOSS_TERMS]).to(acc_dtype)
            steps += 1
            if show:
                loader.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
                last_postfix = now
        counts = torch.tensor([steps, skipped], dtype=acc_dtype, device=self.device)
        reduced = all_reduce_sum(torch.cat([sums, counts]), self.dist).tolist()  # one read
        n = max(reduced[-2], 1.0)
        out = {f"train_{k}": reduced[i] / n for i, k in enumerate(LOSS_TERMS)}
        if self.align_loss is None:
            for k in ("align_kl", "align_l2", "align"):
                out[f"train_{k}"] = float("nan")
        if self.teacher_mode != "joint":
            out["train_teacher_seg"] = out["train_teacher_stage"] = float("nan")
        if cfg.train.stage_supervision <= 0:
            out["train_stage_sup"] = float("nan")
        out["nan_skipped"] = int(reduced[-1])
        return out

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        from medspikeformer.metrics import SegmentationMetrics

        self._sync_buffers()
        self.student.eval()
        metrics = SegmentationMetrics(self.cfg.train.threshold)
        acc_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        loss_sum = torch.zeros(3, dtype=acc_dtype, device=self.device)  # bce·n, dice·n, n
        loader = _progress(
            self.val_loader,
            enabled=self.show_progress,
            desc=f"epoch {epoch}/{self.cfg.train.epochs} val",
            total=len(self.val_loader),
        )
        for batch in loader:
            x, y = self._to_device(batch)
            with self._autocast():
                logits, _ = _segmentation_output(self.student(x))
            logits = logits.float()
            parts = self.seg_loss.components(logits, y)
            b = x.shape[0]
            loss_sum += torch.stack(
                [parts["bce"] * b, parts["dice"] * b, torch.ones((), device=self.device) * b]
            ).to(acc_dtype)
            probs = torch.sigmoid(logits).nan_to_num(0.0)
            metrics.update(probs.cpu(), y.cpu(), list(batch["id"]))
        metrics.sync()
        bce_sum, dice_sum, count = all_reduce_sum(loss_sum, self.dist).tolist()
        n = max(count, 1.0)
        result = {f"val_{k}": float(v) for k, v in metrics.compute().items()}
        result["val_bce"] = bce_sum / n
        result["val_dice_loss"] = dice_sum / n
        result["val_loss"] = result["val_bce"] + result["val_dice_loss"]
        return result

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BatchNorm statistics (the ones saved), so that validation on all
        ranks uses the weights of the checkpoint."""
        if not self.dist.enabled:
            return
        import torch.distributed as dist

        modules = [self.student] + ([self.teacher] if self.teacher_mode == "joint" else [])
        for module in modules:
            for buf in module.buffers():
                dist.broadcast(buf, src=0)

    # -------------------------------------------------------------- main loop
    def run(self) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        start = st.epoch + 1
        if start > cfg.train.epochs:
            self.log(
                f"nothing to do: {self.run_dir} already finished epoch {st.epoch} of {cfg.train.epochs}"
            )
        n_params = sum(p.numel() for p in self.student.parameters())
        self.log(
            f"training {cfg.model.name} ({n_params / 1e6:.3f} M params, teacher {self.teacher_mode}) "
            f"on {cfg.data.dataset} [{len(self.train_set)} train / {len(self.val_set)} val] "
            f"at {cfg.data.size}px on {self.device}"
            + (f" × {self.dist.world_size} ranks" if self.dist.enabled else "")
            + f" → {self.run_dir}"
        )
        last_val: dict[str, Any] = {}
        stopped_early = stopped_on_time = False
        t_start = time.perf_counter()
        for epoch in range(start, cfg.train.epochs + 1):
            t0 = time.perf_counter()
            seed_everything(_epoch_seed(cfg.train.seed, epoch, self.dist.rank))
            train_stats = self.train_epoch(epoch)
            val = self.validate(epoch)
            last_val = val
            lr = self.opt.param_groups[0]["lr"]
            if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                monitor = (
                    val["val_loss"] if cfg.scheduler.monitor == "val_loss" else val["val_miou"]
                )
                self.sched.step(monitor if math.isfinite(monitor) else float("inf"))
            elif self.sched is not None:
                self.sched.step()
            st.epoch = epoch
            st.nan_skipped += train_stats["nan_skipped"]
            improved = val["val_miou"] > st.best_miou
            if improved:
                st.best_miou, st.best_epoch, st.bad_epochs = val["val_miou"], epoch, 0
            else:
                st.bad_epochs += 1
            row = {
                "epoch": epoch,
                "lr": lr,
                **train_stats,
                **val,
                "time_s": time.perf_counter() - t0,
            }
            st.history.append(row)
            # All ranks hold the same state; gather every rank's RNG for last.pt.
            self._rng_all = gather_objects(capture_rng(), self.dist)
            if self.main:
                write_metrics_csv(self.run_dir / "metrics.csv", st.history)
                if improved:
                    ckpt_mod.save_checkpoint(
                        self.run_dir / "best.pt", self._payload(val, with_resume=False)
                    )
                ckpt_mod.save_checkpoint(
                    self.run_dir / "last.pt", self._payload(val, with_resume=True)
                )
            barrier(self.dist)
            self.log(
                f"epoch {epoch}/{cfg.train.epochs}  loss {train_stats['train_total']:.4f}  "
                f"val loss {val['val_loss']:.4f}  val mIoU {val['val_miou']:.4f}  DSC {val['val_dsc']:.4f}  "
                f"(best {st.best_miou:.4f} @ {st.best_epoch})  lr {lr:.2e}  {row['time_s']:.1f}s"
                + (
                    f"  skipped {train_stats['nan_skipped']} non-finite steps"
                    if train_stats["nan_skipped"]
                    else ""
                )
            )
            if cfg.train.early_stopping and st.bad_epochs >= cfg.train.early_stopping:
                self.log(f"early stopping: no val mIoU improvement for {st.bad_epochs} epochs")
                stopped_early = True
                break
            limit = cfg.train.max_time_s
            if limit is not None and time.perf_counter() - t_start >= limit:
                self.log(f"time limit: {limit:.0f} s of training reached after epoch {epoch}")
                stopped_on_time = True
                break
        best_metrics = {}
        for row in st.history:
            if row["epoch"] == st.best_epoch:
                best_metrics = {k: v for k, v in row.items() if k.startswith("val_")}
        final = {
            k: v
            for k, v in (st.history[-1].items() if st.history else {}.items())
            if k.startswith("val_")
        }
        return {
            "run_dir": str(self.run_dir),
            "best_metrics": best_metrics,
            "final_metrics": final or {k: v for k, v in last_val.items()},
            "best_epoch": st.best_epoch,
            "epochs_run": st.epoch,
            "stopped_early": stopped_early,
            "stopped_on_time": stopped_on_time,
            "nan_skipped": st.nan_skipped,
            "teacher": self.teacher_mode,
            "is_main": self.main,
            "world_size": self.dist.world_size,
            "wall_time_s": time.perf_counter() - t_start,
            "best_checkpoint": str(self.run_dir / "best.pt"),
            "last_checkpoint": str(self.run_dir / "last.pt"),
        }

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
        if self._saved_det is not None:
            torch.use_deterministic_algorithms(self._saved_det[0])
            torch.backends.cudnn.benchmark = self._saved_det[1]
        if self._saved_cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = self._saved_cudnn_benchmark
        shutdown_distributed(self.dist)


def train(
    config: TrainConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    resume: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a model; returns ``{"run_dir", "best_metrics", "final_metrics", "best_epoch", ...}``.

    Args:
        config: a TrainConfig, a nested dict (partial: defaults fill the rest) or a YAML path.
            May be omitted with ``resume`` (then ``RUN_DIR/config.yaml`` is used).
        resume: a run directory holding ``last.pt``: continue after its last finished epoch.
        log: where the per-epoch summary lines go (default ``print``; only rank 0 logs).

    With ``MEDSPIKEFORMER_MALLOC=reuse`` glibc keeps large freed blocks for the next step
    (:func:`medspikeformer.runtime.tune_cpu_allocator`: faster, more memory).
    """
    from medspikeformer.runtime import apply_requested_settings

    apply_requested_settings()
    resume_dir = Path(resume) if resume is not None else None
    if resume_dir is not None:
        if not (resume_dir / "last.pt").is_file():
            raise CheckpointError(f"{resume_dir}: nothing to resume (no last.pt in that directory)")
        if config is None:
            config = load_config(resume_dir / "config.yaml")
    if config is None:
        config = TrainConfig()
    elif isinstance(config, (str, Path)):
        config = load_config(config)
    elif isinstance(config, Mapping):
        config = config_from_dict(config)
    if resume_dir is not None:
        config.out = str(resume_dir)
    validate_config(config, check_model=False)
    run = _Run(config, resume_dir=resume_dir, log=log)
    try:
        run.setup()
        return run.run()
    finally:
        run.close()
