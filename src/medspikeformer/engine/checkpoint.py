"""Checkpoints: atomic saving, safe loading, model rebuilding and safetensors export.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts only) so
that it loads with ``torch.load(..., weights_only=True)`` — the unpickler that refuses to run code.
Nothing in this package ever calls ``torch.load`` without ``weights_only=True``.

Payload (``format_version`` 1)::

    {
      "format": "medspikeformer-checkpoint", "format_version": 1,
      "package_version": str, "model_name": str, "model_config": dict,
      "state_dict": {name: tensor},        # the student only, never the teacher
      "epoch": int, "metrics": dict, "train_config": dict,
      # last.pt only, what --resume needs:
      "resume": {"optimizer", "scheduler", "teacher_state_dict", "teacher_optimizer",
                 "rng", "data_order", "early_stopping", "history", ...},
    }

Loading checks the file's integrity before anything is built from it: every zip entry's CRC-32
(a flipped bit in tensor data once loaded silently), entries stored uncompressed (as ``torch.save``
writes them: no zip bomb), a bounded ``model_config``, a state_dict of finite tensors only, and the
model built on the ``meta`` device (no memory) and compared shape by shape before it is built for
real — a hostile ``model_config`` (``base_channels: 2048``) cannot exhaust memory first.

Writes are atomic: the payload goes to a temporary file in the same directory, which is flushed,
fsync'ed and then ``os.replace``-d over the target (and the directory is fsync'ed), so a crash or a
kill during a write leaves the previous checkpoint intact. :class:`CheckpointWriter` does the same
from a background thread (the training loop's ``last.pt``), so that the next epoch starts while
the file is written.
"""

from __future__ import annotations

import collections
import functools
import io
import math
import os
import pickle
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medspikeformer import outputs
from medspikeformer.errors import CheckpointError, ConfigError

CHECKPOINT_FORMAT = "medspikeformer-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_name", "model_config", "state_dict")

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointWriter",
    "atomic_write_bytes",
    "build_payload",
    "check_state_dict_fits",
    "check_tensors",
    "export_safetensors",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`medspikeformer.outputs.atomic_write_bytes`:
    temp file in the same dir → fsync → ``os.replace``, never through a link); an ``OSError`` is a
    one-line ``CheckpointError``."""
    outputs.atomic_write_bytes(path, data, error=CheckpointError)


def build_payload(
    model: nn.Module,
    *,
    epoch: int = 0,
    metrics: Mapping[str, Any] | None = None,
    train_config: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The standard checkpoint dict for ``model`` (unwrapped from DDP / torch.compile)."""
    from medspikeformer import __version__

    model = unwrap_model(model)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "package_version": __version__,
        "model_name": str(model.model_name),
        "model_config": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "train_config": dict(train_config or {}),
    }
    payload.update(extra)
    return payload


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip ``DistributedDataParallel`` (``.module``) and ``torch.compile`` (``._orig_mod``)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Save ``payload`` to ``path`` atomically; returns the path.

    The payload must hold only tensors and primitives (checked by serialising; anything else would
    make ``weights_only`` loading fail later, so it is refused now).
    """
    path = Path(path)
    payload = dict(payload)
    for key in REQUIRED_KEYS:
        if key not in payload:
            raise ValueError(f"checkpoint payload lacks {key!r}")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    # Refuse payloads that could not be read back safely (e.g. a numpy array slipped in).
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"checkpoint payload for {path} holds objects that weights_only loading refuses: {exc}"
        ) from exc
    atomic_write_bytes(path, data)
    return path


def _to_cpu(value: Any) -> Any:
    """A copy of ``value`` whose tensors are CPU copies (never views of live weights: the loop
    changes those in place while the copy is written)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return type(value)((k, _to_cpu(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


class CheckpointWriter:
    """:func:`save_checkpoint` from a background thread, at most one write in flight.

    ``submit(path, payload)`` waits for the previous write (raising its error), copies the
    payload's tensors to the CPU now, and writes them atomically in a thread. ``wait()`` waits
    for the write in flight; an error of the writer (e.g. ``CheckpointError`` "disk full") is
    raised there, in the caller's thread, as the exception the write raised. The loop calls
    ``submit`` where it saved and ``wait`` before it reports or ends.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
        self.wait()
        copied = _to_cpu(dict(payload))
        self._thread = threading.Thread(
            target=self._write, args=(Path(path), copied), name="checkpoint-writer"
        )
        self._thread.start()

    def _write(self, path: Path, payload: dict[str, Any]) -> None:
        try:
            save_checkpoint(path, payload)
        except BaseException as exc:  # handed to the loop's thread by wait()
            self._error = exc

    def wait(self, *, raise_error: bool = True) -> None:
        """Wait for the write in flight; raise its error (or drop it: ``raise_error=False``,
        for a loop that is already failing with another one)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise error

    @property
    def busy(self) -> bool:
        """Whether a write is in flight."""
        return self._thread is not None and self._thread.is_alive()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


#: Bounds of a checkpoint's ``model_config``: keys, nesting depth and string length.
MAX_CONFIG_KEYS = 64
MAX_CONFIG_DEPTH = 4
MAX_CONFIG_STRING = 1024


def _verify_archive(path: Path) -> None:
    """CRC-check every entry of a zip-format checkpoint (legacy files pass through unchanged).

    ``torch.save`` stores entries uncompressed; a compressed entry would decompress to an unknown
    size, so it is refused rather than read.
    """
    try:
        is_zip = zipfile.is_zipfile(path)
    except zipfile.BadZipFile as exc:  # a damaged end record (found by the checkpoint fuzzer)
        raise CheckpointError(f"{path}: corrupt checkpoint ({_one_line(exc)})") from None
    if not is_zip:
        return
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.is_dir() or info.external_attr & 0x10:
                    # torch's reader skips an entry flagged as a (DOS) directory and leaves the
                    # tensor's memory uninitialised: found by the checkpoint fuzzer.
                    raise CheckpointError(
                        f"{path}: corrupt checkpoint (entry {info.filename!r} is flagged as a "
                        "directory)"
                    )
                if info.compress_type != zipfile.ZIP_STORED:
                    raise CheckpointError(
                        f"{path}: entry {info.filename!r} is compressed; checkpoints written by "
                        "torch.save never are (refused: its size is unbounded)"
                    )
                with zf.open(info) as fh:  # reading to the end checks the CRC-32
                    collections.deque(iter(functools.partial(fh.read, 1 << 20), b""), maxlen=0)
    except CheckpointError:
        raise
    except zipfile.BadZipFile as exc:
        raise CheckpointError(
            f"{path}: corrupt checkpoint (CRC check failed: {_one_line(exc)})"
        ) from None
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint ({_one_line(exc)})") from None


def _check_config_value(value: Any, where: str, depth: int = 0) -> str | None:
    """Why ``value`` is not a small JSON-like config value, or None when it is."""
    if depth > MAX_CONFIG_DEPTH:
        return f"{where} is nested deeper than {MAX_CONFIG_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value} (not a finite number)"
    if value is None or isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, str):
        return (
            f"{where} is a string of {len(value)} characters"
            if len(value) > MAX_CONFIG_STRING
            else None
        )
    if isinstance(value, (list, tuple, dict)):
        if len(value) > MAX_CONFIG_KEYS:
            return f"{where} holds {len(value)} items (at most {MAX_CONFIG_KEYS})"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):
                return f"{where} has a non-string key {key!r}"
            problem = _check_config_value(item, f"{where}.{key}", depth + 1)
            if problem:
                return problem
        return None
    return f"{where} is a {type(value).__name__}"


def check_tensors(path: Path, state_dict: Mapping[str, Any], what: str) -> None:
    """Every entry a tensor, every floating-point tensor finite."""
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: {what} entry {key!r} is a {type(value).__name__}, not a tensor"
            )
        if (value.is_floating_point() or value.is_complex()) and not bool(
            torch.isfinite(value).all()
        ):
            raise CheckpointError(
                f"{path}: {what} entry {key!r} holds NaN or infinite values (corrupt or diverged "
                "weights); refusing to load them"
            )


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint dict from ``path`` safely (``weights_only=True``, tensors on CPU).

    Raises:
        CheckpointError: missing file, not a checkpoint, truncated/corrupt, or a pickle that asks to
            run code (nothing is executed: the restricted unpickler refuses before any call).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    _verify_archive(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load — the file asks to run code or build objects that a "
            f"checkpoint never holds ({_one_line(exc)})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt file: {_one_line(exc)})"
        ) from None
    except Exception as exc:  # any other failure of the unpickler on hostile bytes
        raise CheckpointError(f"{path}: not a readable checkpoint ({_one_line(exc)})") from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a medspikeformer checkpoint (no 'format: {CHECKPOINT_FORMAT}' entry)"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this package reads "
            f"({CHECKPOINT_FORMAT_VERSION}); upgrade medspikeformer"
        )
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if not isinstance(obj["state_dict"], dict) or not isinstance(obj["model_config"], dict):
        raise CheckpointError(f"{path}: checkpoint's state_dict or model_config is not a dict")
    problem = _check_config_value(obj["model_config"], "model_config")
    if problem:
        raise CheckpointError(f"{path}: implausible checkpoint: {problem}")
    check_tensors(path, obj["state_dict"], "state_dict")
    obj["model_config"] = _upgraded_model_config(obj["model_name"], obj["model_config"])
    return obj


def _upgraded_model_config(name: Any, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the options an older version left implicit made explicit, so that an old
    checkpoint builds the network it was trained as (models.medspikeformer.upgrade_saved_config)."""
    from medspikeformer.models import model_info
    from medspikeformer.models.medspikeformer import upgrade_saved_config

    try:
        family = model_info(str(name)).family
    except ConfigError:
        return config  # an unknown model is reported where it is built, with the known ones
    return upgrade_saved_config(config) if family == "medspikeformer" else config


def load_state_dict_checked(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str, target: str
) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with a one-line CheckpointError on mismatch.

    ``source`` names where the weights come from (file + model), ``target`` the receiving model.
    """
    check_state_dict_fits(model.state_dict(), state_dict, source=source, target=target)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source} does not fit {target}: {_one_line(exc)}") from None


def check_state_dict_fits(
    own: Mapping[str, torch.Tensor],
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str,
    target: str,
) -> None:
    """CheckpointError naming missing, unexpected and other-shaped entries (``own`` may be meta)."""
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shape = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    # a complex tensor would be copied into a real parameter with its imaginary part dropped
    kind = [
        f"{k} {state_dict[k].dtype} vs {v.dtype}"
        for k, v in own.items()
        if k in state_dict
        and isinstance(state_dict[k], torch.Tensor)
        and state_dict[k].is_complex() != v.is_complex()
    ]
    shape += kind
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shape:
            parts.append(f"{len(shape)} of other shape or kind (e.g. {shape[0]})")
        raise CheckpointError(f"{source} does not fit {target}: parameters {'; '.join(parts)}")


def load_model(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    *,
    expected_model: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved in ``path`` and load its weights strictly; returns (model, ckpt).

    The model is built with ``create_model(ckpt["model_name"], **ckpt["model_config"])``, moved to
    ``map_location`` and put in eval mode. ``expected_model`` (a registry name) makes a checkpoint of
    another model a ``CheckpointError`` naming both.
    """
    from medspikeformer import create_model
    from medspikeformer.errors import ConfigError

    ckpt = load_checkpoint(path)
    name = ckpt["model_name"]
    if expected_model is not None and expected_model != name:
        raise CheckpointError(
            f"{path}: checkpoint holds model {name!r}, but {expected_model!r} was asked for"
        )

    def build() -> nn.Module:
        try:
            return create_model(name, **ckpt["model_config"])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: cannot rebuild model {name!r}: {exc}") from None
        except MemoryError:
            raise
        except Exception as exc:  # the config is the file's: any failure to build is the file's
            raise CheckpointError(
                f"{path}: model config does not fit model {name!r}: "
                f"{type(exc).__name__}: {_one_line(exc)}"
            ) from None

    # First without memory (meta tensors): a config asking for a huge model must not be built
    # before its shapes are compared with the weights actually in the file.
    with torch.device("meta"):
        skeleton = build()
    check_state_dict_fits(
        skeleton.state_dict(),
        ckpt["state_dict"],
        source=f"{path} (model {name!r})",
        target=f"model {name!r} built from its config",
    )
    del skeleton
    model = build()
    load_state_dict_checked(
        model,
        ckpt["state_dict"],
        source=f"{path} (model {name!r})",
        target=f"model {name!r} built from its config",
    )
    model.to(map_location)
    model.eval()
    return model, ckpt


def load_weights_into(model: nn.Module, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into an existing ``model`` (strict); returns the ckpt dict.

    A checkpoint of another model or another config → ``CheckpointError`` naming both.
    """
    ckpt = load_checkpoint(path)
    model = unwrap_model(model)
    own_name, own_config = model.model_name, model.config
    if ckpt["model_name"] != own_name:
        raise CheckpointError(
            f"{path}: checkpoint holds model {ckpt['model_name']!r}, not the {own_name!r} this run "
            f"builds; train model {ckpt['model_name']!r} (--model {ckpt['model_name']})"
        )
    differ = config_differences_of_models(ckpt["model_config"], own_config)
    if differ:
        fix = " ".join(f"--set model.{k}={ckpt['model_config'][k]!r}" for k, _, _ in differ[:3])
        listed = "; ".join(f"{k}: checkpoint {a!r}, this run {b!r}" for k, a, b in differ[:4])
        more = f"; … {len(differ) - 4} more" if len(differ) > 4 else ""
        raise CheckpointError(
            f"{path}: its model differs from the one this run builds ({listed}{more}); "
            f"build the checkpoint's ({fix}) or start from scratch"
        )
    load_state_dict_checked(
        model,
        ckpt["state_dict"],
        source=f"{path} (model {ckpt['model_name']!r}, config {ckpt['model_config']})",
        target=f"model {own_name!r} (config {own_config})",
    )
    return ckpt


def config_differences_of_models(
    saved: Mapping[str, Any], own: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """``(option, saved value, own value)`` for every model option the two configs set
    differently that changes the weights' shapes or meaning (``compile_neurons`` and
    ``checkpoint_attention`` only change speed and memory)."""
    speed_only = {"compile_neurons", "checkpoint_attention"}
    return [
        (k, saved[k], own[k])
        for k in sorted(set(saved) & set(own))
        if k not in speed_only and saved[k] != own[k]
    ]


def export_safetensors(ckpt_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Write the student's weights of ``ckpt_path`` as a ``.safetensors`` file (atomic).

    The safetensors metadata holds ``model_name``, ``model_config`` (JSON) and ``package_version``,
    so the file alone is enough to rebuild the model.
    """
    import json

    from safetensors.torch import save

    ckpt = load_checkpoint(ckpt_path)
    tensors = {k: v.detach().clone().contiguous() for k, v in ckpt["state_dict"].items()}
    metadata = {
        "format": "medspikeformer-weights",
        "model_name": str(ckpt["model_name"]),
        "model_config": json.dumps(ckpt["model_config"], sort_keys=True),
        "package_version": str(ckpt.get("package_version", "")),
    }
    out_path = Path(out_path)
    atomic_write_bytes(out_path, save(tensors, metadata=metadata))
    return out_path
