"""The training options: one dataclass per config section, each field declared once.

A field's :func:`~medspikeformer.config.options.option` holds its default, choices or bounds,
whether it may change on ``--resume``, its ``train`` flag and help — the one place to add or
change an option (docs/development.md, "How to add an option"). The YAML spelling is the field
path: ``train.epochs``, ``teacher.align.weight``; ``model`` is written flat (``model: {name:
medspikeformer, timesteps: 4}``: every key but ``name`` is a model option).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from medspikeformer.config.checks import (
    MAX_BATCH_SIZE,
    check_dataset_name,
    check_device,
    check_num_workers,
    check_output_name,
    check_seed_value,
    check_teacher_mode,
    check_train_size,
    check_two_numbers,
    num_workers_flag,
)
from medspikeformer.config.options import option
from medspikeformer.data.base import DEFAULT_SEED
from medspikeformer.precision import PRECISIONS

__all__ = [
    "COMPILE_MODES",
    "INIT_FROM_TWIN",
    "AlignConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "SchedulerConfig",
    "TeacherConfig",
    "TrainConfig",
    "TrainLoopConfig",
    "config_to_dict",
]

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

INIT_FROM_TWIN = "twin"
"""``train.init_from`` value that trains the ANN twin first and starts the run from it."""


@dataclass
class ModelConfig:
    """Which registered model, plus keyword overrides passed to ``create_model(name, **options)``.

    In YAML every key other than ``name`` is an option: ``model: {name: medspikeformer, timesteps: 4}``.
    """

    name: str = option(
        "medspikeformer",
        flag="--model",
        help="registered model name (medspikeformer list-models)",
    )
    options: dict[str, Any] = option(
        default_factory=dict, help="the model's own constructor options (model.KEY in YAML)"
    )


@dataclass
class DataConfig:
    """Arguments of ``medspikeformer.data.build_dataset``.

    ``split_spec`` is handed to the data layer unchanged (e.g. a split file or fractions); the
    dataset's own default split is used when it is null. ``options`` are dataset-specific keywords.
    ``labels``: null (binary masks) or the class mapping of label maps (``{name: id}`` classes,
    ``{name: [ids]}`` regions; ``medspikeformer.data.labels``); it sets the model's
    ``num_classes`` (and ``multilabel`` for regions).
    """

    dataset: str = option(
        "synthetic", flag="--dataset", check=check_dataset_name, help="registered dataset name"
    )
    root: str | None = option(
        None, resume=True, flag="--data-root", help="the dataset's folder (may move on resume)"
    )
    size: int = option(
        256, flag="--size", check=check_train_size, help="training image size (square)"
    )
    split_spec: Any = option(
        None,
        flag="--split",
        flag_type=str,
        help="split spec: paper, official, 70/10/20 or a JSON file",
    )
    augment: str | None = option("paper", help="augmentation recipe (null = none)")
    in_channels: int | None = option(
        None, choices=(1, 3), help="input channels (null = the data's)"
    )
    cache_dir: Any = option(
        None,
        resume=True,
        help="decoded-array cache folder; null = ~/.cache/medspikeformer; false = no cache",
    )
    num_workers: Any = option(
        "auto",
        resume=True,
        check=check_num_workers,
        flag="--num-workers",
        flag_type=num_workers_flag,
        help="data-loader worker processes: an integer >= 0, or auto (4 on CUDA, 0 on a CPU)",
    )
    train_split: str = option("train", help="name of the training part of the split")
    val_split: str = option("val", help="name of the validation part of the split")
    options: dict[str, Any] = option(default_factory=dict, help="the loader's own keywords")
    labels: dict[str, Any] | None = option(
        None, help="class mapping of label maps (null = binary masks)"
    )
    validation: str = option(
        "train",
        choices=("train", "test"),
        help="checkpoint selection: train = a validation part carved from the training cases, "
        "test = the paper's protocol (selection on the test part)",
    )
    val_fraction: float = option(
        0.1, gt=0.0, le=0.5, help="share of training cases carved out for validation"
    )
    folds: int | None = option(
        None,
        ge=2,
        flag="--folds",
        metavar="N",
        help="cross-validation: N folds of the training cases (null = none)",
    )
    fold: int | None = option(
        None, ge=0, flag="--fold", metavar="K", help="cross-validation: fold K (0..N-1) validates"
    )


@dataclass
class OptimConfig:
    """Optimiser of the student (and, with the same settings, of a joint teacher)."""

    name: str = option("adam", choices=("adam", "adamw", "sgd"), help="optimiser")
    lr: float = option(1e-4, gt=0.0, flag="--lr", help="learning rate")
    weight_decay: float = option(1e-5, ge=0.0, help="weight decay")
    betas: list[float] = option(
        default_factory=lambda: [0.9, 0.999],
        ge=0.0,
        lt=1.0,
        check=check_two_numbers,
        help="Adam betas (two numbers in [0, 1))",
    )
    grad_clip: float | None = option(None, gt=0.0, help="gradient-norm clip (null = none)")


@dataclass
class SchedulerConfig:
    """Learning-rate schedule. ``plateau`` = ReduceLROnPlateau on ``monitor`` (``val_loss`` or
    ``val_miou``), stepped once per epoch; ``cosine`` = cosine annealing over the epochs; ``none``."""

    name: str = option("plateau", choices=("plateau", "cosine", "none"), help="schedule")
    monitor: str = option("val_loss", choices=("val_loss", "val_miou"), help="plateau's metric")
    factor: float = option(0.5, gt=0.0, lt=1.0, help="plateau's reduction factor")
    patience: int = option(30, ge=0, help="plateau's patience (epochs)")
    min_lr: float = option(0.0, help="lowest learning rate")


@dataclass
class AlignConfig:
    """Distribution alignment between student and teacher stage masks (DESIGN.md, Sec. 3.3).

    ``stages``: 0-based encoder-unit indices to align (null = all). ``kl``: ``bernoulli`` (default,
    minimum at p = q) or ``paper`` (the literal Ô_s log(Ô_s/Ô_a)). ``weight``: λ_align.
    """

    weight: float = option(1.0, ge=0.0, help="λ_align, the alignment loss weight")
    stages: list[int] | None = option(None, help="encoder units to align (null = all)")
    kl: str = option("bernoulli", choices=("bernoulli", "paper"), help="form of the KL term")
    use_kl: bool = option(True, help="use the KL term")
    use_l2: bool = option(True, help="use the L2 term")


@dataclass
class TeacherConfig:
    """``mode``: ``auto`` (joint for the medspikeformer family, none otherwise), ``joint``, ``none``
    or the path of a checkpoint of the ANN twin (frozen). ``lr``: joint teacher's learning rate
    (null = the student's). ``stage_supervision``: weight of the joint teacher's deep supervision
    of its stage mask heads (BCE + Dice against the mask resized to each stage) — without it those
    heads, whose maps are the alignment targets, would never be trained."""

    mode: str = option(
        "auto",
        flag="--teacher",
        check=check_teacher_mode,
        help="auto | joint | none | PATH of a frozen ANN-twin checkpoint",
    )
    lr: float | None = option(None, gt=0.0, help="joint teacher's learning rate (null = student's)")
    stage_supervision: float = option(1.0, ge=0.0, help="joint teacher's stage-head supervision")
    align: AlignConfig = field(default_factory=AlignConfig)


@dataclass
class TrainLoopConfig:
    """Loop settings. ``early_stopping``: epochs without a val-mIoU improvement before stopping
    (0 = off). ``nan_policy``: ``stop`` (raise NumericalError) or ``skip`` (skip the step, count it).
    ``precision``: ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``fp32``, ``bf16`` (autocast,
    CUDA or CPU) or ``fp16`` (autocast + gradient scaler); see ``medspikeformer.precision``.
    ``max_time_s``: stop after the epoch in which this many seconds of training passed (null = no
    limit; for fixed-time comparisons such as ``benchmarks/gpu_check.py``).
    ``compile``: ``torch.compile`` the student (and a joint teacher) with ``compile_mode``
    (``default``, ``reduce-overhead`` = CUDA graphs, ``max-autotune``,
    ``max-autotune-no-cudagraphs``). ``channels_last``: NHWC weights and input images.
    ``stage_supervision``: weight of deep supervision of the trained model's own stage heads (0 in
    the paper recipe; set 1 when training an ``ann`` model to be used later as a frozen teacher).
    ``init_from``: a checkpoint whose student weights start the run (fine-tuning; fresh optimiser
    and schedule, epoch 1; the ANN twin's checkpoint starts a twin initialisation), or
    :data:`INIT_FROM_TWIN` (``twin``): train the model's ANN twin first into ``RUN/twin/`` and
    start from it. ``loggers``: names of registered loggers
    (``medspikeformer.engine.loggers``, e.g. ``tensorboard``) besides ``metrics.csv``.

    ``resume=True`` marks what may differ on ``--resume``: how or how long the run goes on, not
    what an epoch computes (``epochs`` extends or shortens it; a cosine schedule is re-planned)."""

    epochs: int = option(200, ge=1, resume=True, flag="--epochs", help="training epochs")
    # bounded so that an absurd value is a config error, not a traceback deep in the loader
    batch_size: int = option(
        8, ge=1, le=MAX_BATCH_SIZE, flag="--batch-size", help="training batch size"
    )
    val_batch_size: int | None = option(
        None, ge=1, le=MAX_BATCH_SIZE, resume=True, help="validation batch size (null = batch_size)"
    )
    seed: int = option(DEFAULT_SEED, check=check_seed_value, flag="--seed", help="run seed")
    device: str = option(
        "auto", resume=True, check=check_device, flag="--device", help="auto | cpu | cuda | cuda:N"
    )
    precision: str = option(
        "auto",
        choices=PRECISIONS,
        resume=True,
        flag="--precision",
        help="autocast: auto = bf16 on CUDA, fp32 on CPU; fp16 adds a gradient scaler",
    )
    compile: bool = option(
        False, resume=True, flag="--compile", action="store_true", help="torch.compile the model"
    )
    compile_mode: str = option(
        "default", choices=COMPILE_MODES, resume=True, help="torch.compile mode"
    )
    channels_last: bool = option(False, help="NHWC weights and input images")
    deterministic: bool = option(
        False, flag="--deterministic", action="store_true", help="deterministic algorithms only"
    )
    early_stopping: int = option(
        0, ge=0, help="epochs without a val-mIoU improvement before stopping (0 = off)"
    )
    max_time_s: float | None = option(
        None, gt=0.0, resume=True, help="stop after the epoch past this many seconds"
    )
    nan_policy: str = option("stop", choices=("stop", "skip"), help="on a NaN loss")
    threshold: float = option(0.5, gt=0.0, lt=1.0, help="probability threshold of the masks")
    stage_supervision: float = option(
        0.0, ge=0.0, help="deep supervision of the model's own stage heads"
    )
    progress: bool = option(
        True, resume=True, flag="--no-progress", action="store_false", help="no progress bars"
    )
    init_from: str | None = option(
        None,
        # read only when a run starts; a resumed run loads last.pt
        resume=True,
        flag="--init-from",
        metavar="CKPT|twin",
        help="fine-tune: start from the weights of CKPT (same model and options; a run's last.pt "
        "also gives a joint teacher its weights; the model's ANN twin's checkpoint starts a twin "
        "initialisation); fresh optimiser, schedule and epochs. 'twin': train the ANN twin first "
        "into OUT/twin/ and start from it (the cpu recipe does)",
    )
    loggers: list[str] = option(
        default_factory=list,
        # where the metrics also go, not what is computed
        resume=True,
        flag="--logger",
        action="append",
        metavar="NAME",
        help="also log to NAME besides metrics.csv (tensorboard: pip install "
        "'medspikeformer[tensorboard]'); repeatable",
    )


@dataclass
class TrainConfig:
    """The whole, resolved training configuration (saved as ``config.yaml`` in the run directory)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    out: str | None = option(
        None,
        # the run directory may be moved between a run and its resume
        resume=True,
        check=check_output_name,
        flag="--out",
        help="run directory (default runs/<dataset>-<model>)",
    )

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (YAML/JSON-serialisable); the model section is written flat."""
    data = dataclasses.asdict(config)
    model = data.pop("model")
    return {"model": {"name": model["name"], **model["options"]}, **data}
