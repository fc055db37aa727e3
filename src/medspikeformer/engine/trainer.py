"""The training loop: epochs of :class:`~medspikeformer.engine.step.TrainingStep`, validation,
checkpoints, resume, DDP.

The step itself (forwards, loss terms, backward, skip-on-non-finite, update) is
:mod:`medspikeformer.engine.step`; RNG and loop state are :mod:`medspikeformer.engine.state`;
the data comes from :func:`medspikeformer.engine.datasets.dataset_from_config`.

Every epoch: train → validate (global-confusion mIoU etc.) → scheduler step → the callbacks'
``on_epoch_end``: the user's, then the built-in bookkeeping
(:mod:`medspikeformer.engine.builtin_callbacks`: metrics.csv row → ``best.pt`` if val mIoU
improved → ``last.pt`` with the full resume state → early stopping, time limit; ``summary.json``
at the end). ``--resume`` restores
model, optimisers, scheduler, RNG states, early-stopping state and history, and continues with the
next epoch; the data order of epoch e depends only on (seed, e), and every epoch re-seeds the RNGs
from (seed, e, rank), so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from medspikeformer.data.selection import protocol_line
from medspikeformer.engine import checkpoint as ckpt_mod
from medspikeformer.engine.builtin_callbacks import default_callbacks
from medspikeformer.engine.callbacks import Callback
from medspikeformer.engine.config import (
    INIT_FROM_TWIN,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
    validate_config,
)
from medspikeformer.engine.datasets import (
    build_loader,
    dataset_from_config,
    labels_of_the_folder,
    resolve_num_workers,
)
from medspikeformer.engine.distributed import (
    ShardSampler,
    all_reduce_sum,
    barrier,
    gather_objects,
    init_distributed,
    shutdown_distributed,
)
from medspikeformer.engine.loggers import build_loggers
from medspikeformer.engine.optim import build_scheduler, replan_cosine
from medspikeformer.engine.resume_check import config_differences, split_differences
from medspikeformer.engine.run_dir import (
    RunLock,
    collect_versions,
    ensure_writable_dir,
    run_dir_of,
    write_json,
)
from medspikeformer.engine.state import (
    LoopState,
    capture_rng,
    epoch_seed,
    restore_rng,
    restore_training,
    seed_everything,
    training_payload,
)
from medspikeformer.engine.step import (
    FINITE_CHECK_EVERY,
    UNLOGGED_TERMS,
    TrainingStep,
    resolve_teacher_mode,
)
from medspikeformer.engine.task import metrics_for
from medspikeformer.errors import CheckpointError, ConfigError
from medspikeformer.models import to_probabilities
from medspikeformer.models.twin_init import transfer_twin_weights, twin_matches
from medspikeformer.runtime import check_train_platform, progress_enabled, resolve_device

__all__ = ["resolve_device", "resolve_teacher_mode", "train"]

#: Seconds between progress-bar loss updates: each update reads the loss from the device.
PROGRESS_INTERVAL_S = 1.0


def _progress(iterable: Any, *, enabled: bool, desc: str, total: int | None = None) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)


class _Run:
    """One training run (single process or one DDP rank)."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume_dir: Path | None,
        log: Callable[[str], None] | None,
        callbacks: Iterable[Callback] = (),
        builtin_callbacks: Iterable[Callback] | None = None,
        resume_force: bool = False,
    ):
        self.cfg = config
        self.resume_dir = resume_dir
        self.resume_force = resume_force
        self.callbacks = list(callbacks)
        self.builtin_callbacks = list(
            default_callbacks() if builtin_callbacks is None else builtin_callbacks
        )
        t = config.train
        device_type = (
            "cuda"
            if (t.device.startswith("cuda") or (t.device == "auto" and torch.cuda.is_available()))
            else "cpu"
        )
        self.dist = init_distributed(device_type)
        self.device = resolve_device(t.device, self.dist.local_rank)
        self.main = self.is_main = self.dist.is_main
        self._log = log if log is not None else (lambda msg: print(msg, flush=True))
        self.show_progress = self.main and progress_enabled(t.progress)
        self.teacher_mode = resolve_teacher_mode(config)
        self.state = LoopState()
        self.stop_reason: str | None = None  # set by request_stop: "early", "time", ...
        self._stop_message = ""
        self.lock: RunLock | None = None
        self.step: TrainingStep | None = None
        self._saved_det: tuple[bool, bool] | None = None
        self._saved_cudnn_benchmark: bool | None = None
        self.writer = ckpt_mod.CheckpointWriter()  # last.pt in the background

    def log(self, msg: str) -> None:
        if self.main:
            self._log(msg)

    # The run's models and optimisers are its step's.
    @property
    def student(self) -> nn.Module:
        return self.step.student

    @property
    def teacher(self) -> nn.Module | None:
        return self.step.teacher

    @property
    def opt(self) -> torch.optim.Optimizer:
        return self.step.opt

    @property
    def t_opt(self) -> torch.optim.Optimizer | None:
        return self.step.t_opt

    @property
    def scaler(self) -> Any:
        return self.step.scaler

    @property
    def precision(self) -> str:
        return self.step.precision

    # -------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg = self.cfg
        if cfg.train.deterministic:
            self._saved_det = (
                torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.benchmark,
            )
            deterministic_environment()
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            # Fixed input sizes: let cuDNN time its convolution algorithms once and keep the best.
            self._saved_cudnn_benchmark = torch.backends.cudnn.benchmark
            torch.backends.cudnn.benchmark = True
        self.run_dir = run_dir_of(cfg)
        if self.main:
            self.created_dir = not self.run_dir.exists()
            ensure_writable_dir(self.run_dir)
            self.lock = RunLock(self.run_dir).acquire()
        barrier(self.dist)
        held = [n for n in ("last.pt", "best.pt") if (self.run_dir / n).is_file()]
        if self.resume_dir is None and held:
            # Starting afresh would overwrite best.pt/last.pt of the run already there.
            raise ConfigError(
                f"{self.run_dir}: already holds a training run ({', '.join(held)}); continue it "
                f"with `medspikeformer train --resume {self.run_dir}` or choose another --out"
            )
        # A folder with these names but no versions.json (written with them by every run) is
        # someone else's: a fresh run would replace a dataset's own split.json or config.yaml.
        foreign = [n for n in RUN_FILES if (self.run_dir / n).exists()]
        if self.resume_dir is None and foreign and not (self.run_dir / "versions.json").is_file():
            raise ConfigError(
                f"{self.run_dir}: holds {', '.join(foreign)} not written by a training run "
                "(no versions.json); a new run would replace them — choose another --out"
            )
        if self.resume_dir is not None:
            self._keep_old_selection(self.run_dir / "split.json")
            self._check_resumed_config(self.resume_dir / "last.pt")

        if self.main:  # loggers beside metrics.csv (train.loggers), on rank 0 only
            self.callbacks += build_loggers(cfg.train.loggers, self.run_dir)
        # The user's callbacks (and loggers) first, the bookkeeping last: last.pt then saves every
        # callback's state after its epoch.
        self.callbacks += self.builtin_callbacks
        seed_everything(cfg.train.seed)
        # Models, losses and optimisers (in this order: the RNG draws of a run depend on it).
        self.step = TrainingStep(
            cfg,
            device=self.device,
            dist=self.dist,
            callbacks=self.callbacks,
            check_every=FINITE_CHECK_EVERY,
        )
        self._build_data()
        split_file = self.run_dir / "split.json"
        resumed_split = self.resume_dir is not None and split_file.is_file()
        if resumed_split:
            self._check_resumed_split(split_file)
        self.sched = build_scheduler(self.opt, cfg)
        if self.resume_dir is not None:
            self._restore(self.resume_dir / "last.pt")
        elif cfg.train.init_from == INIT_FROM_TWIN:
            twin = self._train_twin()
            if twin is not None:
                self._init_from(twin)
        elif cfg.train.init_from:
            self._init_from(Path(cfg.train.init_from))
        # Wrappers (after loading weights into the plain modules).
        self.step.wrap(ddp=self.dist.enabled, compile=cfg.train.compile)

        if self.main:
            save_config(cfg, self.run_dir / "config.yaml")
            if not resumed_split:  # a resumed run keeps the split it was trained on
                self.train_set.save_split(split_file)
            write_json(self.run_dir / "versions.json", collect_versions())

    def _build_data(self, **overrides: Any) -> None:
        d, t = self.cfg.data, self.cfg.train
        in_ch = self.student.in_channels
        self.train_set = dataset_from_config(
            self.cfg, d.train_split, augment=d.augment or "none", in_channels=in_ch, **overrides
        )
        self.val_set = dataset_from_config(self.cfg, d.val_split, in_channels=in_ch, **overrides)
        self.intensity = self.train_set.source.intensity()  # recorded in every checkpoint
        if len(self.train_set) == 0:
            raise ConfigError(f"dataset {d.dataset!r}: the {d.train_split!r} split is empty")
        if len(self.val_set) == 0:
            raise ConfigError(f"dataset {d.dataset!r}: the {d.val_split!r} split is empty")
        if self.main:  # masks that all read as empty train nothing and validate as mIoU 1.0
            from medspikeformer.data.check import warn_if_nearly_empty

            for split, ds in ((d.train_split, self.train_set), (d.val_split, self.val_set)):
                warn_if_nearly_empty(ds, f"dataset {d.dataset!r}, {split!r} split")
        self.train_sampler = DistributedSampler(
            self.train_set,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=True,
            seed=t.seed,
            drop_last=False,
        )
        workers = resolve_num_workers(d.num_workers, self.device)
        rank = self.dist.rank
        self.train_loader = build_loader(
            self.train_set,
            batch_size=t.batch_size,
            sampler=self.train_sampler,
            num_workers=workers,
            device=self.device,
            seed_of=lambda epoch: epoch_seed(t.seed, epoch, rank),
        )
        self.val_loader = build_loader(
            self.val_set,
            batch_size=t.val_batch_size or t.batch_size,
            sampler=ShardSampler(len(self.val_set), self.dist.rank, self.dist.world_size),
            num_workers=workers,
            device=self.device,
        )

    # -------------------------------------------------------------- resume
    def _check_resumed_config(self, path: Path) -> None:
        """Refuse (unless forced) a config that differs from the one ``last.pt`` trained with.

        A run written before the ``neuron`` option existed trained the paper's LIF; its config
        leaves the neuron implicit, so the neuron it was trained with is made explicit here
        (in the config and in the saved one it is compared with) before the default changes it."""
        ckpt = ckpt_mod.load_checkpoint(path)
        saved = ckpt.get("train_config")
        neuron = ckpt["model_config"].get("neuron")
        if neuron is not None and "neuron" not in self.cfg.model.options:
            self.cfg.model.options["neuron"] = neuron
            if isinstance(saved, Mapping) and isinstance(saved.get("model"), Mapping):
                saved = {**saved, "model": {"neuron": neuron, **saved["model"]}}
        if not isinstance(saved, Mapping) or not saved:
            return  # written by an old version without it: nothing to compare with
        if isinstance(saved.get("data"), Mapping) and "validation" not in saved["data"]:
            # written before data.validation existed: _keep_old_selection decided it
            saved = {**saved, "data": {**saved["data"], "validation": self.cfg.data.validation}}
        diffs = config_differences(saved, config_to_dict(self.cfg))
        if not diffs:
            return
        listed = "; ".join(diffs[:6]) + (f"; … {len(diffs) - 6} more" if len(diffs) > 6 else "")
        if not self.resume_force:
            raise ConfigError(
                f"{self.run_dir / 'config.yaml'}: differs from the config {path} was trained with "
                f"({listed}); undo the edit, or continue with it using --resume-force"
            )
        self.log(f"warning: resuming with a changed config (--resume-force): {listed}")

    def _keep_old_selection(self, split_file: Path) -> None:
        """A run whose ``split.json`` predates ``data.validation`` selected on the test part
        (``val`` = ``test``); it continues under that protocol, so its split stays the same."""
        import json

        from medspikeformer.data.selection import selection_protocol

        try:
            saved = json.loads(split_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return  # no readable split: _check_resumed_split says so
        old = isinstance(saved, dict) and "validation" not in saved
        if old and selection_protocol(saved) == "test":
            self.cfg.data.validation = "test"

    def _check_resumed_split(self, split_file: Path) -> None:
        """The split drawn now must be the saved one; ``--resume-force`` uses the saved one."""
        import json

        try:
            saved = json.loads(split_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{split_file}: cannot read the run's split ({exc})") from None
        if not isinstance(saved, dict):
            raise ConfigError(f"{split_file}: not a split file (expected a JSON object)")
        diffs = split_differences(saved, self.train_set.split_info)
        if not diffs:
            return
        if not self.resume_force:
            raise ConfigError(
                f"{split_file}: the split drawn from the data now differs from the one this run "
                f"trained on ({'; '.join(diffs)}); continue on the saved split with --resume-force"
            )
        self.log(
            f"warning: the data changed ({'; '.join(diffs)}); continuing on the saved {split_file}"
        )
        self._build_data(split_spec=str(split_file))

    def _restore(self, path: Path) -> None:
        self.state = restore_training(
            path,
            self.step,
            self.sched,
            target=f"model {self.cfg.model.name!r} of {self.resume_dir / 'config.yaml'}",
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        for cb in self.callbacks:
            if cb.state_key in self.state.callbacks:
                cb.load_state_dict(self.state.callbacks[cb.state_key])
        self.log(f"resumed {self.resume_dir} after epoch {self.state.epoch}")
        if replan_cosine(self.sched, self.cfg.train.epochs, self.state.epoch):
            self.log(f"cosine schedule re-planned over {self.cfg.train.epochs} epochs")

    def _init_from(self, path: Path) -> None:
        """Fine-tuning: the student's weights (strict) from ``path``, and a joint teacher's when
        the file holds them (a run's ``last.pt``); optimisers, schedule and epochs start afresh.
        A checkpoint of the student's ANN twin instead starts a twin initialisation
        (:mod:`medspikeformer.models.twin_init`): every matching tensor of the twin into the
        student, and the whole twin into a joint teacher. Where the weights came from is kept
        in the checkpoints and ``summary.json`` (``init``)."""
        if not path.is_file():  # checked here, not in validate_config: a resumed run never reads it
            raise ConfigError(
                f"config value train.init_from={str(path)!r}: no such checkpoint file"
            )
        peek = ckpt_mod.load_checkpoint(path)
        if twin_matches(self.student, peek["model_name"], peek["model_config"]):
            self._init_from_twin(path, peek)
            return
        ckpt = ckpt_mod.load_weights_into(self.student, path)
        teacher_state = (ckpt.get("resume") or {}).get("teacher_state_dict")
        with_teacher = self.teacher_mode == "joint" and bool(teacher_state)
        if with_teacher:
            ckpt_mod.load_state_dict_checked(
                self.teacher,
                teacher_state,
                source=f"{path} (teacher_state_dict)",
                target=f"the joint teacher of model {self.cfg.model.name!r}",
            )
        self.state.init = {"kind": "fine-tune", "path": str(path), "sha256": _sha256(path)}
        self.log(
            f"initialised from {path} (model {ckpt['model_name']!r}, epoch {ckpt.get('epoch')}"
            + (", with its teacher)" if with_teacher else ")")
        )

    def _train_twin(self) -> Path | None:
        """``train.init_from: twin``: train the student's ANN twin into ``RUN/twin/`` (same data,
        split, seed and schedule; no teacher; the student's head gain) and return its
        ``last.pt``. A twin already finished there (its ``summary.json``) is reused, an unfinished
        one resumed; a model without a twin starts from scratch, and the log says so."""
        cfg = self.cfg
        options = self.student.twin_config()  # None: an ANN or a model without a twin
        if options is None:
            self.log(f"train.init_from=twin: model {cfg.model.name!r} has no ANN twin; it starts "
                     "from scratch")  # fmt: skip
            return None
        if self.dist.enabled:
            raise ConfigError(
                "train.init_from=twin trains the twin in one process: train it first "
                "(`medspikeformer train ... --model ann --teacher none --out TWIN`), then start "
                "this run with --init-from TWIN/last.pt"
            )
        twin_dir = self.run_dir / "twin"
        last = twin_dir / "last.pt"
        if (twin_dir / "summary.json").is_file() and last.is_file():
            self.log(f"train.init_from=twin: reusing the finished twin {twin_dir}")
            return last
        head_gain = self.student.config.get("head_gain")
        spec = config_to_dict(cfg)
        spec["model"] = {"name": "ann", **options}
        if head_gain is not None:
            spec["model"]["head_gain"] = head_gain
        spec["teacher"] = {**spec["teacher"], "mode": "none"}
        spec["train"] = {**spec["train"], "init_from": None}
        spec["out"] = str(twin_dir)
        self.log(f"train.init_from=twin: training the ANN twin first → {twin_dir}")
        rng = capture_rng()  # the student's run draws the same numbers with or without this stage
        try:
            train(
                None if last.is_file() else spec,
                resume=twin_dir if last.is_file() else None,
                log=lambda line: self.log(f"twin: {line}"),
            )
        finally:
            restore_rng(rng)
        return last

    def _init_from_twin(self, path: Path, ckpt: dict[str, Any]) -> None:
        moved = transfer_twin_weights(self.student, ckpt["state_dict"], source=str(path))
        with_teacher = self.teacher_mode == "joint"
        if with_teacher:
            ckpt_mod.load_state_dict_checked(
                self.teacher,
                ckpt["state_dict"],
                source=f"{path} (ANN twin)",
                target=f"the joint teacher of model {self.cfg.model.name!r}",
            )
        self.state.init = {
            "kind": "twin",
            "path": str(path),
            "sha256": _sha256(path),
            "copied": len(moved.copied),
            "kept": list(moved.kept),
            "identity": list(moved.identity),
        }
        self.log(
            f"initialised from the ANN twin {path} ({moved.summary()}"
            + (", the joint teacher from all of it)" if with_teacher else ")")
        )

    # -------------------------------------------------------------- what callbacks use
    def checkpoint_payload(
        self, metrics: Mapping[str, Any], *, with_resume: bool
    ) -> dict[str, Any]:
        """best.pt's payload, or last.pt's with the resume state (every callback's included)."""
        resume = None
        if with_resume:
            states = {cb.state_key: cb.state_dict() for cb in self.callbacks}
            resume = {
                "scheduler": self.sched,
                "rng": self._rng_all,
                "dist": self.dist,
                "callbacks": {k: v for k, v in states.items() if v},
            }
        return training_payload(
            self.step,
            self.state,
            dict(metrics),
            train_config=config_to_dict(self.cfg),
            resume=resume,
            intensity=self.intensity,
        )

    def save_last(self, payload: dict[str, Any]) -> None:
        """``last.pt`` from a background thread (one write in flight; a failed write stops the
        run at the next save or at the end with its one-line error)."""
        self.writer.submit(self.run_dir / "last.pt", payload)

    def request_stop(self, reason: str, message: str) -> None:
        """End the run after this epoch (the first request of an epoch wins); ``message`` is
        logged after the epoch's line, ``reason`` (``early``, ``time``) goes to the summary."""
        if self.stop_reason is None:
            self.stop_reason, self._stop_message = reason, message

    # -------------------------------------------------------------- epochs
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of steps; returns the mean of every logged term (``train_<name>``) and
        ``nan_skipped``. Sums stay on the device by name; the epoch reads them once."""
        cfg, step = self.cfg, self.step
        step.train()
        self.train_sampler.set_epoch(epoch)
        acc_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        sums: dict[str, torch.Tensor] = {}  # term name → device sum, made at the first step
        counts = torch.zeros(2, dtype=acc_dtype, device=self.device)  # applied, skipped
        loader = _progress(
            self.train_loader,
            enabled=self.show_progress,
            desc=f"epoch {epoch}/{cfg.train.epochs} train",
            total=len(self.train_loader),
        )
        last_postfix = -math.inf
        for index, batch in enumerate(loader, 1):
            now = time.perf_counter()
            show = self.show_progress and now - last_postfix >= PROGRESS_INTERVAL_S
            terms = step.step(
                batch,
                read_loss=show,
                fault_message=lambda what, i=index: (
                    f"epoch {epoch} step {i}: {what}; {self._kept()}"
                ),
            )
            verdict = step.last_verdict
            if not sums:
                sums = {
                    k: torch.zeros((), dtype=acc_dtype, device=self.device)
                    for k in terms
                    if k not in UNLOGGED_TERMS
                }
            # A skipped step (nan_policy=skip) is left out on the device: no read per step.
            good = step.last_good
            for name, total in sums.items():
                total += torch.where(good, terms[name].detach().to(acc_dtype), 0.0)
            counts += torch.stack([good, ~good]).to(acc_dtype)
            if show:
                loader.set_postfix(loss=f"{verdict.loss:.4f}", refresh=False)
                last_postfix = now
        step.settle()  # the deferred finite check of the epoch's last steps (stop raises here)
        return self._epoch_means(sums, counts, acc_dtype)

    def _kept(self) -> str:
        self.writer.wait(raise_error=False)  # a write in flight finishes first
        last = self.run_dir / "last.pt"
        if last.exists():
            return f"last good checkpoint {last} (epoch {self.state.epoch}) kept"
        return "no checkpoint was written yet"

    def _epoch_means(
        self, sums: dict[str, torch.Tensor], counts: torch.Tensor, acc_dtype: torch.dtype
    ) -> dict[str, float]:
        """All ranks' means in one reduction and one read (``counts``: applied and skipped
        steps, on the device); inactive terms → NaN."""
        names = list(sums)
        stacked = torch.cat([torch.stack(list(sums.values())), counts]) if names else counts
        reduced = all_reduce_sum(stacked, self.dist).tolist()
        n = max(reduced[-2], 1.0)
        out = {f"train_{k}": reduced[i] / n for i, k in enumerate(names)}
        for k in self.step.inactive_terms():
            out[f"train_{k}"] = float("nan")
        out["nan_skipped"] = int(reduced[-1])
        return out

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        self._sync_buffers()
        self.student.eval()
        metrics = metrics_for(self.student, self.cfg)
        acc_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        loss_sum = torch.zeros(3, dtype=acc_dtype, device=self.device)  # bce·n, dice·n, n
        loader = _progress(
            self.val_loader,
            enabled=self.show_progress,
            desc=f"epoch {epoch}/{self.cfg.train.epochs} val",
            total=len(self.val_loader),
        )
        for batch in loader:
            x, y = self.step.to_device(batch)
            with self.step.autocast():
                logits = self.student(x)
            logits = logits.float()
            parts = self.step.seg_loss.components(logits, y)
            b = x.shape[0]
            loss_sum += torch.stack(
                [parts["bce"] * b, parts["dice"] * b, torch.ones((), device=self.device) * b]
            ).to(acc_dtype)
            probs = to_probabilities(logits, self.student.activation).nan_to_num(0.0)
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
        self.log(protocol_line(self.train_set.split_info))
        if start <= cfg.train.epochs and _compiles_neurons(self.student):
            self.log("compiling the neurons' fused kernels on the first batch (tens of seconds on "
                     "a CPU, once per shape; cached in TORCHINDUCTOR_CACHE_DIR)")  # fmt: skip
        for cb in self.callbacks:
            cb.on_fit_start(self)
        last_val: dict[str, Any] = {}
        t_start = time.perf_counter()
        for epoch in range(start, cfg.train.epochs + 1):
            t0 = time.perf_counter()
            seed_everything(epoch_seed(cfg.train.seed, epoch, self.dist.rank))
            train_stats = self.train_epoch(epoch)
            val = self.validate(epoch)
            last_val = val
            for cb in self.callbacks:
                cb.on_validation_end(epoch, val)
            lr = self.opt.param_groups[0]["lr"]
            self._scheduler_step(val)
            st.epoch = epoch
            st.nan_skipped += train_stats["nan_skipped"]
            if val["val_miou"] > st.best_miou:
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
            for cb in self.callbacks:
                cb.on_epoch_end(epoch, row)
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
            if self.stop_reason is not None:
                self.log(self._stop_message)
                break
        self.writer.wait()  # the last epoch's last.pt is on disk before the run reports
        result = self._result(last_val, time.perf_counter() - t_start)
        for cb in self.callbacks:
            cb.on_fit_end(result)
        for cb in self.callbacks:
            cb.on_train_end(result)
        return result

    def _scheduler_step(self, val: Mapping[str, float]) -> None:
        if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitor = (
                val["val_loss"] if self.cfg.scheduler.monitor == "val_loss" else val["val_miou"]
            )
            self.sched.step(monitor if math.isfinite(monitor) else float("inf"))
        elif self.sched is not None:
            self.sched.step()

    def _result(self, last_val: Mapping[str, Any], wall_time_s: float) -> dict[str, Any]:
        """What ``train`` returns and ``summary.json`` holds."""
        st = self.state
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
            "final_metrics": final or dict(last_val),
            "best_epoch": st.best_epoch,
            "epochs_run": st.epoch,
            "stopped_early": self.stop_reason == "early",
            "stopped_on_time": self.stop_reason == "time",
            "nan_skipped": st.nan_skipped,
            "teacher": self.teacher_mode,
            "init": st.init,
            # which images chose best.pt (the cases are listed in split.json)
            "selection": {
                k: v
                for k, v in (self.train_set.split_info.get("validation") or {}).items()
                if k != "cases"
            },
            "is_main": self.main,
            "world_size": self.dist.world_size,
            "wall_time_s": wall_time_s,
            "best_checkpoint": str(self.run_dir / "best.pt"),
            "last_checkpoint": str(self.run_dir / "last.pt"),
        }

    def remove_if_left_empty(self) -> None:
        """A run that failed before writing anything leaves no empty folder behind (only the one
        it created; a folder that existed before is never touched)."""
        if getattr(self, "created_dir", False):
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # refuses a folder that is not empty

    def close(self) -> None:
        self.writer.wait(raise_error=False)  # never release the lock while last.pt is written
        if self.lock is not None:
            self.lock.release()
        if self._saved_det is not None:
            torch.use_deterministic_algorithms(self._saved_det[0])
            torch.backends.cudnn.benchmark = self._saved_det[1]
        if self._saved_cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = self._saved_cudnn_benchmark
        shutdown_distributed(self.dist)


#: The files a run writes beside its checkpoints (docs/training.md, "Run directory").
RUN_FILES = ("config.yaml", "split.json", "metrics.csv", "summary.json")


#: cuBLAS needs a fixed workspace to be deterministic; without one the first CUDA matmul under
#: ``torch.use_deterministic_algorithms(True)`` raises. ``:4096:8`` is the larger of the two
#: settings NVIDIA documents (the other, ``:16:8``, costs speed).
CUBLAS_WORKSPACE = ":4096:8"


def deterministic_environment() -> None:
    """The environment ``--deterministic`` needs on CUDA: ``CUBLAS_WORKSPACE_CONFIG`` (read when
    cuBLAS first runs in the process; a value the user set is kept)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def train(
    config: TrainConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    resume: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    callbacks: Iterable[Callback] = (),
    builtin_callbacks: Iterable[Callback] | None = None,
    resume_force: bool = False,
) -> dict[str, Any]:
    """Train a model; returns ``{"run_dir", "best_metrics", "final_metrics", "best_epoch", ...}``.

    Args:
        config: a TrainConfig, a nested dict (partial: defaults fill the rest) or a YAML path.
            May be omitted with ``resume`` (then ``RUN_DIR/config.yaml`` is used).
        resume: a run directory holding ``last.pt``: continue after its last finished epoch.
        log: where the per-epoch summary lines go (default ``print``; only rank 0 logs).
        callbacks: :class:`~medspikeformer.engine.callbacks.Callback` hooks (loggers, probes).
        builtin_callbacks: the run's own bookkeeping (metrics.csv, checkpoints, early stop, time
            limit, summary.json); None = :func:`~medspikeformer.engine.builtin_callbacks.
            default_callbacks`. Pass a changed list to replace or drop one.
        resume_force: resume even when the config differs from the one in ``last.pt`` or the
            data would give another split than ``split.json`` (which is then used).

    Nothing process-wide is changed (allocator, environment): the command line's CPU settings
    are its own (:mod:`medspikeformer.allocator`, ``medspikeformer allocator``).
    """
    check_train_platform()
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
    if resume_dir is None:  # a Decathlon folder's own labels (a resumed run keeps its config's)
        declared = labels_of_the_folder(config)
        if declared is not None:
            config.data.labels = declared
            (log or print)(f"data.labels from the folder's dataset.json: {declared}")
            validate_config(config, check_model=False)
    run = _Run(
        config,
        resume_dir=resume_dir,
        log=log,
        callbacks=callbacks,
        builtin_callbacks=builtin_callbacks,
        resume_force=resume_force,
    )
    set_up = False
    try:
        run.setup()
        set_up = True
        return run.run()
    finally:
        run.close()
        if not set_up:
            run.remove_if_left_empty()


def _compiles_neurons(model: nn.Module) -> bool:
    """Whether ``model`` runs any neuron on the fused (``torch.compile``d) backend."""
    from medspikeformer.neurons import LIFNeuron

    return any(isinstance(m, LIFNeuron) and m.backend == "fused" for m in model.modules())


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file (the record of which weights started a run)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
