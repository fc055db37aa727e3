"""Typed training configuration: dataclasses loaded from YAML and overridden from the command line.

Resolution order (later wins)::

    dataclass defaults  <  --config FILE  <  --recipe NAME|FILE  <  common flags  <  --set key=value

A *recipe* is a partial config (same schema) merged over the dataset config, e.g.
the shipped ``cpu-quick`` recipe (``src/medspikeformer/configs/recipes/``). Values given as strings on the command line are parsed as YAML
scalars (``--set optim.lr=3e-4``, ``--set teacher.align.stages=[1,2,3]``) and coerced to the field's
type. See ``docs/training.md`` for the full reference.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

import yaml

from medspikeformer.data.base import DEFAULT_SEED
from medspikeformer.errors import ConfigError

__all__ = [
    "AlignConfig",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "SchedulerConfig",
    "TeacherConfig",
    "TrainConfig",
    "TrainLoopConfig",
    "config_from_dict",
    "config_to_dict",
    "find_config_file",
    "label_options",
    "label_spec",
    "load_config",
    "merge_dicts",
    "model_options_for",
    "parse_set_option",
    "same_model_family",
    "switch_model",
    "validate_config",
]

#: The shipped dataset configs (and ``recipes/``): package data of ``medspikeformer``, so a wheel
#: install finds them as a checkout does (docs/training.md, "Where configs come from").
CONFIG_DIR = Path(str(resources.files("medspikeformer") / "configs"))


@dataclass
class ModelConfig:
    """Which registered model, plus keyword overrides passed to ``create_model(name, **options)``.

    In YAML every key other than ``name`` is an option: ``model: {name: medspikeformer, timesteps: 4}``.
    """

    name: str = "medspikeformer"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Arguments of ``medspikeformer.data.build_dataset``.

    ``split_spec`` is handed to the data layer unchanged (e.g. a split file or fractions); the
    dataset's own default split is used when it is null. ``options`` are dataset-specific keywords.
    ``labels``: null (binary masks) or the class mapping of label maps (``{name: id}`` classes,
    ``{name: [ids]}`` regions; ``medspikeformer.data.labels``); it sets the model's
    ``num_classes`` (and ``multilabel`` for regions). ``validation`` (``train``: select
    checkpoints on ``val_fraction`` of the training cases unless the split names a validation
    part; ``test``: the paper's protocol), ``folds``/``fold`` (fold K of N as the validation
    part): :mod:`medspikeformer.data.selection`.
    """

    dataset: str = "synthetic"
    root: str | None = None
    size: int = 256
    split_spec: Any = None
    augment: str | None = "paper"
    in_channels: int | None = None
    cache_dir: Any = None  # folder; null = ~/.cache/medspikeformer; false = no cache
    num_workers: Any = "auto"  # an integer >= 0, or auto (engine/datasets.py)
    train_split: str = "train"
    val_split: str = "val"
    options: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] | None = None
    validation: str = "train"
    val_fraction: float = 0.1
    folds: int | None = None
    fold: int | None = None


@dataclass
class OptimConfig:
    """Optimiser of the student (and, with the same settings, of a joint teacher)."""

    name: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float | None = None


@dataclass
class SchedulerConfig:
    """Learning-rate schedule. ``plateau`` = ReduceLROnPlateau on ``monitor`` (``val_loss`` or
    ``val_miou``), stepped once per epoch; ``cosine`` = cosine annealing over the epochs; ``none``."""

    name: str = "plateau"
    monitor: str = "val_loss"
    factor: float = 0.5
    patience: int = 30
    min_lr: float = 0.0


@dataclass
class AlignConfig:
    """Distribution alignment between student and teacher stage masks (DESIGN.md, Sec. 3.3).

    ``stages``: 0-based encoder-unit indices to align (null = all). ``kl``: ``bernoulli`` (default,
    minimum at p = q) or ``paper`` (the literal Ô_s log(Ô_s/Ô_a)). ``weight``: λ_align.
    """

    weight: float = 1.0
    stages: list[int] | None = None
    kl: str = "bernoulli"
    use_kl: bool = True
    use_l2: bool = True


@dataclass
class TeacherConfig:
    """``mode``: ``auto`` (joint for the medspikeformer family, none otherwise), ``joint``, ``none``
    or the path of a checkpoint of the ANN twin (frozen). ``lr``: joint teacher's learning rate
    (null = the student's). ``stage_supervision``: weight of the joint teacher's deep supervision
    of its stage mask heads (BCE + Dice against the mask resized to each stage) — without it those
    heads, whose maps are the alignment targets, would never be trained."""

    mode: str = "auto"
    lr: float | None = None
    stage_supervision: float = 1.0
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
    (``medspikeformer.engine.loggers``, e.g. ``tensorboard``) besides ``metrics.csv``."""

    epochs: int = 200
    batch_size: int = 8
    val_batch_size: int | None = None
    seed: int = DEFAULT_SEED
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    compile_mode: str = "default"
    channels_last: bool = False
    deterministic: bool = False
    early_stopping: int = 0
    max_time_s: float | None = None
    nan_policy: str = "stop"
    threshold: float = 0.5
    stage_supervision: float = 0.0
    progress: bool = True
    init_from: str | None = None
    loggers: list[str] = field(default_factory=list)


INIT_FROM_TWIN = "twin"
"""``train.init_from`` value that trains the ANN twin first and starts the run from it."""


@dataclass
class TrainConfig:
    """The whole, resolved training configuration (saved as ``config.yaml`` in the run directory)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


# ----------------------------------------------------------------------------- dict <-> dataclass


def merge_dicts(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, anything else in ``update`` replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def _model_section_to_dict(section: Mapping[str, Any]) -> dict[str, Any]:
    """YAML ``model:`` (flat: name + options) → ModelConfig fields."""
    section = dict(section)
    options = dict(section.pop("options", None) or {})
    name = section.pop("name", ModelConfig.name)
    options.update(section)
    return {"name": name, "options": options}


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        return tp, True
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` (str → number/bool where unambiguous)."""
    inner, optional = _strip_optional(tp)
    if value is None:
        if optional or inner is Any:
            return None
        raise ConfigError(f"config value {where} must not be null")
    if inner is Any:
        return value
    if dataclasses.is_dataclass(inner):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section {where} must be a mapping, got {value!r}")
        return _build(inner, value, where)
    origin = typing.get_origin(inner)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config value {where} must be a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        (item_tp,) = typing.get_args(inner) or (Any,)
        if isinstance(value, str):
            try:
                value = safe_yaml_load(value)
            except (yaml.YAMLError, RecursionError):
                raise ConfigError(f"config value {where} must be a list, got {value!r}") from None
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"config value {where} must be a list, got {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "true",
            "yes",
            "on",
            "1",
            "false",
            "no",
            "off",
            "0",
        ):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"config value {where} must be true/false, got {value!r}")
    if inner is int:
        if isinstance(value, bool):
            raise ConfigError(f"config value {where} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # not an integer: the error below names it
                return int(value)
        raise ConfigError(f"config value {where} must be an integer, got {value!r}")
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"config value {where} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config value {where} must be a number, got {value!r}") from None
    if inner is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"config value {where} must be a string, got {value!r}")
    return value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if cls is ModelConfig:
        data = _model_section_to_dict(data)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in names), key=str)  # keys may be any YAML type
    if unknown:
        prefix = f"{where}." if where else ""
        key = unknown[0]
        shown = key if isinstance(key, str) and key.isprintable() and key else repr(key)
        raise ConfigError(
            f"unknown config key {prefix}{shown} (known in {where or 'top level'}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None) -> TrainConfig:
    """Build a TrainConfig from a (possibly partial) nested dict; unknown keys → ConfigError."""
    return _build(TrainConfig, dict(data or {}), "")


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (YAML/JSON-serialisable); the model section is written flat."""
    data = dataclasses.asdict(config)
    model = data.pop("model")
    data = {"model": {"name": model["name"], **model["options"]}, **data}
    return data


# ----------------------------------------------------------------------------- files and overrides


def find_config_file(name_or_path: str | Path, kind: str = "config") -> Path:
    """Resolve ``kvasir`` / ``kvasir.yaml`` / a path: an existing file, else the shipped configs
    (:data:`CONFIG_DIR`, ``recipes/`` for ``kind='recipe'``), else ``./configs/`` of the current
    folder (a user's own)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    sub = CONFIG_DIR / "recipes" if kind == "recipe" else CONFIG_DIR
    for base in (sub, Path.cwd() / "configs" / ("recipes" if kind == "recipe" else "")):
        for candidate in (base / path.name, base / f"{path.name}.yaml"):
            if candidate.is_file():
                return candidate
    known = sorted(p.stem for p in sub.glob("*.yaml")) if sub.is_dir() else []
    raise ConfigError(
        f"{name_or_path}: {kind} file not found (known {kind}s: {', '.join(known) or 'none'})"
    )


#: A config file larger than this is refused unread (configs are a few kB).
MAX_CONFIG_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``): a few hundred bytes of nested aliases
    expand to gigabytes ("billion laughs"), and no config needs them; and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"YAML alias *{event.anchor} is not allowed in a config",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # a key given twice: YAML keeps the last silently, so an edit above a forgotten line
        # would change nothing
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} in a mapping", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def safe_yaml_load(text: str) -> Any:
    """``yaml.safe_load`` without aliases (:class:`_NoAliasLoader`); raises ``yaml.YAMLError``."""
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, oversized, non-UTF-8 or malformed file, or one using YAML
    aliases → ConfigError naming it."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: config file of {path.stat().st_size} bytes is larger than "
                f"{MAX_CONFIG_BYTES} bytes"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: config is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        data = safe_yaml_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        problem = getattr(exc, "problem", None)
        shown = ("alias", "duplicate key")  # our own refusals; the parser's wording is noise
        detail = f": {problem}" if problem and any(w in str(problem) for w in shown) else ""
        raise ConfigError(f"{path}: malformed YAML{where}{detail}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


def parse_set_option(text: str) -> dict[str, Any]:
    """``'optim.lr=3e-4'`` → ``{"optim": {"lr": 3e-4}}`` (the value is parsed as a YAML scalar)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = safe_yaml_load(raw) if raw.strip() else None
    except (yaml.YAMLError, RecursionError):
        value = raw
    # YAML 1.1 reads 1e-4 as a string; numbers are coerced by field type later.
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(
    config: str | Path | None = None,
    *,
    recipe: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
) -> TrainConfig:
    """Resolve a TrainConfig: defaults < config file < recipe < ``overrides`` (nested dict) < sets."""
    data: dict[str, Any] = {}
    if config is not None:
        data = merge_dicts(data, read_yaml(find_config_file(config, "config")))
    if recipe is not None:
        data = merge_dicts(data, read_yaml(find_config_file(recipe, "recipe")))
    given: dict[str, Any] = dict(overrides or {})
    for text in sets:
        given = merge_dicts(given, parse_set_option(text))
    new_name = (given.get("model") or {}).get("name")
    if new_name is not None:
        data = switch_model(data, str(new_name))
    data = merge_dicts(data, given)
    # A flat ``model`` section (name + options) must merge option by option.
    return config_from_dict(data)


#: Model options that mean the same for every model family (kept when the model is switched).
SHARED_MODEL_OPTIONS = ("in_channels",)


def same_model_family(name: str, other: str) -> bool:
    """Whether two registered models take the same constructor options (``ModelInfo.family``);
    an unknown name → ConfigError listing the registered models."""
    from medspikeformer.models import model_info

    return model_info(name).family == model_info(other).family


def model_options_for(name: str, from_name: str | None, options: Mapping[str, Any]) -> dict:
    """The options of ``from_name``'s model section that still apply to model ``name``: all of
    them within one family, only :data:`SHARED_MODEL_OPTIONS` across families (the U-Net has no
    ``num_units``, and its ``base_channels`` means another width)."""
    if from_name is None or same_model_family(name, from_name):
        return dict(options)
    return {k: v for k, v in options.items() if k in SHARED_MODEL_OPTIONS}


def switch_model(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A nested config dict whose model becomes ``name`` (``--model``): the file's model options
    are kept as :func:`model_options_for` says; across families the file's teacher mode, chosen
    for its own model, goes back to ``auto`` (the new model's registered default)."""
    out = dict(data)
    section = _model_section_to_dict(out.get("model") or {})
    old = section["name"]
    if old == name:
        return out
    out["model"] = {"name": name, **model_options_for(name, old, section["options"])}
    if not same_model_family(name, old) and isinstance(out.get("teacher"), Mapping):
        out["teacher"] = {**out["teacher"], "mode": "auto"}
    return out


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomic)."""
    from medspikeformer.engine.checkpoint import atomic_write_bytes

    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    atomic_write_bytes(path, text.encode())


# ----------------------------------------------------------------------------- validation

_SCHEDULERS = ("plateau", "cosine", "none")
_MONITORS = ("val_loss", "val_miou")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # = medspikeformer.precision.PRECISIONS
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_NAN_POLICIES = ("stop", "skip")
_KL_FORMS = ("bernoulli", "paper")
_OPTIMS = ("adam", "adamw", "sgd")


def _choice(value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"config value {where}={value!r} is not one of {', '.join(choices)}")


def validate_config(config: TrainConfig, *, check_model: bool = True) -> None:
    """Check values that the dataclass types cannot (ranges, choices, model/size compatibility).

    With ``check_model`` the model is looked up in the registry, built once on CPU and the training
    size is checked against its ``size_divisor``.
    """
    t = config.train
    if t.epochs < 1:
        raise ConfigError(f"config value train.epochs={t.epochs} must be at least 1")
    if t.batch_size < 1:
        raise ConfigError(f"config value train.batch_size={t.batch_size} must be at least 1")
    if t.val_batch_size is not None and t.val_batch_size < 1:
        raise ConfigError(
            f"config value train.val_batch_size={t.val_batch_size} must be at least 1"
        )
    if t.max_time_s is not None and t.max_time_s <= 0:
        raise ConfigError(f"config value train.max_time_s={t.max_time_s} must be positive or null")
    if t.early_stopping < 0:
        raise ConfigError(f"config value train.early_stopping={t.early_stopping} must be >= 0")
    if not 0.0 < t.threshold < 1.0:
        raise ConfigError(f"config value train.threshold={t.threshold} must be in (0, 1)")
    from medspikeformer.data import check_seed

    check_seed(t.seed, "config value train.seed")
    _choice(t.precision, _PRECISIONS, "train.precision")
    _choice(t.compile_mode, _COMPILE_MODES, "train.compile_mode")
    _choice(t.nan_policy, _NAN_POLICIES, "train.nan_policy")
    if t.device != "auto" and not (
        t.device in ("cpu", "cuda", "mps") or t.device.startswith("cuda:")
    ):
        raise ConfigError(
            f"config value train.device={t.device!r} is not auto, cpu, cuda[:N] or mps"
        )
    _check_loggers(t.loggers)
    _check_finite(config)
    o = config.optim
    _choice(o.name, _OPTIMS, "optim.name")
    if o.lr <= 0:
        raise ConfigError(f"config value optim.lr={o.lr} must be positive")
    if o.weight_decay < 0:
        raise ConfigError(f"config value optim.weight_decay={o.weight_decay} must be >= 0")
    if len(o.betas) != 2:
        raise ConfigError(f"config value optim.betas={o.betas} must hold two numbers")
    if not all(0.0 <= b < 1.0 for b in o.betas):
        raise ConfigError(f"config value optim.betas={list(o.betas)} must lie in [0, 1)")
    if o.grad_clip is not None and o.grad_clip <= 0:
        raise ConfigError(f"config value optim.grad_clip={o.grad_clip} must be positive or null")
    s = config.scheduler
    _choice(s.name, _SCHEDULERS, "scheduler.name")
    _choice(s.monitor, _MONITORS, "scheduler.monitor")
    if not 0.0 < s.factor < 1.0:
        raise ConfigError(f"config value scheduler.factor={s.factor} must be in (0, 1)")
    if s.patience < 0:
        raise ConfigError(f"config value scheduler.patience={s.patience} must be >= 0")
    a = config.teacher.align
    _choice(a.kl, _KL_FORMS, "teacher.align.kl")
    if a.weight < 0:
        raise ConfigError(f"config value teacher.align.weight={a.weight} must be >= 0")
    if config.teacher.stage_supervision < 0 or t.stage_supervision < 0:
        raise ConfigError(
            "config values teacher.stage_supervision and train.stage_supervision must be >= 0"
        )
    if config.teacher.lr is not None and config.teacher.lr <= 0:
        raise ConfigError(f"config value teacher.lr={config.teacher.lr} must be positive")
    mode = config.teacher.mode
    if mode not in ("auto", "joint", "none") and not Path(mode).is_file():
        raise ConfigError(
            f"config value teacher.mode={mode!r}: not auto, joint, none or an existing checkpoint file"
        )
    d = config.data
    if d.size < 8:
        raise ConfigError(f"config value data.size={d.size} is too small (at least 8)")
    if d.size > MAX_TRAIN_SIZE:
        raise ConfigError(
            f"config value data.size={d.size} is too large (at most {MAX_TRAIN_SIZE}; train on "
            "crops or resized images, predict large ones with sliding windows)"
        )
    if d.num_workers != "auto" and (
        isinstance(d.num_workers, bool) or not isinstance(d.num_workers, int) or d.num_workers < 0
    ):
        raise ConfigError(
            f"config value data.num_workers={d.num_workers!r} must be an integer >= 0 or auto"
        )
    if d.in_channels is not None and d.in_channels not in (1, 3):
        raise ConfigError(f"config value data.in_channels={d.in_channels} must be 1 or 3")
    _check_dataset_name(d.dataset)
    from medspikeformer.data.selection import check_validation_options

    check_validation_options(d.validation, d.val_fraction, d.folds, d.fold, where="data")
    if check_model:
        model = build_model_from_config(config)
        divisor = model.size_divisor
        if d.size % divisor:
            raise ConfigError(
                f"config value data.size={d.size} is not divisible by {divisor}, which model "
                f"{config.model.name!r} needs (size_divisor); use e.g. {max(divisor, d.size // divisor * divisor)}"
            )


def _check_loggers(names: list[str]) -> None:
    from medspikeformer.engine.loggers import list_loggers

    unknown = [n for n in names if n not in list_loggers()]
    if unknown:
        raise ConfigError(
            f"config value train.loggers: unknown logger {unknown[0]!r} "
            f"(known: {', '.join(list_loggers())})"
        )


#: Largest training image side: one 8-image batch of the paper model at 4096² already needs
#: hundreds of GB of activations.
MAX_TRAIN_SIZE = 4096


def _check_finite(config: TrainConfig) -> None:
    """Every float of the config finite, at any depth — nested sections (``teacher.align``),
    dicts (model and loader options) and lists alike (``.nan`` / ``.inf`` pass ``lr <= 0``-style
    checks: every comparison with NaN is false)."""

    def walk(value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config value {where}={value!r} must be a finite number")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                name = f"{where}.{f.name}" if where else f.name
                # model options are spelled model.KEY (the YAML's flat model section)
                walk(getattr(value, f.name), "model" if name == "model.options" else name)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, where)

    walk(config, "")


def _check_dataset_name(name: str) -> None:
    from medspikeformer import data as data_module

    lister = getattr(data_module, "list_datasets", None)
    if lister is None:
        return
    known = list(lister())
    if name not in known:
        raise ConfigError(f"unknown dataset {name!r} (known: {', '.join(sorted(known))})")


def label_spec(config: TrainConfig) -> Any:
    """The parsed ``data.labels`` (a ``LabelSpec``), or ``None`` for a binary run."""
    if config.data.labels is None:
        return None
    from medspikeformer.data.labels import LabelSpec

    return LabelSpec.from_mapping(config.data.labels)


def label_options(config: TrainConfig) -> dict[str, Any]:
    """The model options ``data.labels`` implies: ``num_classes`` (and ``multilabel`` for
    regions); empty for a binary run. A model section that says otherwise → ConfigError."""
    spec = label_spec(config)
    if spec is None:
        return {}
    implied: dict[str, Any] = {"num_classes": spec.num_classes}
    if spec.multilabel:
        implied["multilabel"] = True
    for key, value in implied.items():
        given = config.model.options.get(key)
        if given is not None and given != value:
            raise ConfigError(
                f"config value model.{key}={given!r} disagrees with data.labels "
                f"({spec.num_classes} {'regions' if spec.multilabel else 'classes'}: "
                f"{', '.join(spec.names)}); leave model.{key} out"
            )
    return implied


def build_model_from_config(config: TrainConfig, **extra: Any):
    """``create_model(config.model.name, **config.model.options)``; unknown name → ConfigError.
    ``data.labels`` supplies ``num_classes`` / ``multilabel`` (:func:`label_options`)."""
    from medspikeformer import create_model

    options = dict(config.model.options)
    if config.data.in_channels is not None:
        options.setdefault("in_channels", config.data.in_channels)
    options.update(label_options(config))
    options.update(extra)
    try:
        return create_model(config.model.name, **options)
    except TypeError as exc:
        raise ConfigError(
            f"model {config.model.name!r} does not accept the options {sorted(options)}: {exc}"
        ) from None
