"""Mixed precision: one place that says which autocast a run uses and what stays float32.

``precision`` (``train.precision``, ``--precision``) is one of :data:`PRECISIONS`:

- ``fp32``: no autocast;
- ``bf16``: ``torch.autocast(device, dtype=torch.bfloat16)`` around the forward passes, on CUDA
  and on CPU (on CPU it runs the same code, usually slower than fp32);
- ``fp16``: ``torch.autocast(device, dtype=torch.float16)`` plus a ``torch.amp.GradScaler``
  (fp16's 5-bit exponent underflows small gradients without loss scaling);
- ``auto``: ``bf16`` on CUDA, ``fp32`` elsewhere.

What autocast does *not* decide, the model does (docs/training.md, "Precision"): spike-saving
convolutions cast their inputs the way autocast casts ``F.conv2d``; the decomposed attention core
and its BatchNorm, the other spiking attention cores, the losses and the gradient norm run in
float32 (:func:`float32_region`, :func:`upcast`); BatchNorm keeps float32 parameters and running
statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = [
    "PRECISIONS",
    "active_autocast_dtype",
    "autocast",
    "autocast_dtype",
    "float32_region",
    "make_grad_scaler",
    "resolve_precision",
    "upcast",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_REDUCED = (torch.bfloat16, torch.float16)


def _device_type(device: torch.device | str) -> str:
    return device.type if isinstance(device, torch.device) else torch.device(device).type


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` → ``bf16`` on CUDA, ``fp32`` elsewhere; other names are checked and returned."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if _device_type(device) == "cuda" else "fp32"
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (``None`` for ``fp32``)."""
    return _DTYPES[precision]


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` (resolved or ``auto``) on ``device``."""
    dtype = autocast_dtype(resolve_precision(precision, device))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(_device_type(device), dtype=dtype)


def make_grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler:
    """A ``GradScaler`` that is enabled only for ``fp16`` (a no-op pass-through otherwise)."""
    enabled = resolve_precision(precision, device) == "fp16"
    return torch.amp.GradScaler(_device_type(device), enabled=enabled)


def active_autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast casts to on ``device_type`` right now, ``None`` when it is off."""
    if device_type not in ("cpu", "cuda") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


@contextlib.contextmanager
def float32_region(device_type: str) -> Iterator[None]:
    """Turn autocast off on ``device_type`` (for code that must compute in float32)."""
    if active_autocast_dtype(device_type) is None:
        yield
        return
    with torch.autocast(device_type, enabled=False):
        yield


def upcast(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 when it is bf16/fp16; float32 and float64 tensors are returned as is."""
    return x.float() if x.dtype in _REDUCED else x
