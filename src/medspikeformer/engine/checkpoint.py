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

Writes are atomic: the payload goes to a temporary file in the same directory, which is flushed,
fsync'ed and then ``os.replace``-d over the target (and the directory is fsync'ed), so a crash or a
kill during a write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medspikeformer.errors import CheckpointError

CHECKPOINT_FORMAT = "medspikeformer-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_name", "model_config", "state_dict")

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "atomic_write_bytes",
    "build_payload",
    "export_safetensors",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]


def _fsync_dir(directory: Path) -> None:
    """fsync a directory so that a rename inside it survives a power cut (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same dir → fsync → ``os.replace``."""
    path = Path(path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write there ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)  # mkstemp creates 0600; checkpoints are shareable files
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(directory)


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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
    return obj


def load_state_dict_checked(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str, target: str
) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with a one-line CheckpointError on mismatch.

    ``source`` names where the weights come from (file + model), ``target`` the receiving model.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shape = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shape:
            parts.append(f"{len(shape)} of other shape (e.g. {shape[0]})")
        raise CheckpointError(f"{source} does not fit {target}: parameters {'; '.join(parts)}")
    model.load_state_dict(state_dict, strict=True)


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
    try:
        model = create_model(name, **ckpt["model_config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: cannot rebuild model {name!r}: {exc}") from None
    except TypeError as exc:
        raise CheckpointError(
            f"{path}: model config does not fit model {name!r}: {_one_line(exc)}"
        ) from None
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
            f"{path}: checkpoint holds model {ckpt['model_name']!r} "
            f"(config {ckpt['model_config']}), which cannot be loaded into model {own_name!r}"
        )
    load_state_dict_checked(
        model,
        ckpt["state_dict"],
        source=f"{path} (model {ckpt['model_name']!r}, config {ckpt['model_config']})",
        target=f"model {own_name!r} (config {own_config})",
    )
    return ckpt


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
