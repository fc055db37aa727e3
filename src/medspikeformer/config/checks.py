"""Rules of single options that are not a choice list or a bound (``Option.check``).

Each takes ``(value, key)`` and raises a one-line ``ConfigError`` naming ``key``.
"""

from __future__ import annotations

from pathlib import Path

from medspikeformer.errors import ConfigError

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_TRAIN_SIZE",
    "TEACHER_MODES",
    "check_dataset_name",
    "check_device",
    "check_num_workers",
    "check_output_name",
    "check_seed_value",
    "check_teacher_mode",
    "check_train_size",
    "check_two_numbers",
    "num_workers_flag",
]

#: Largest training image side: one 8-image batch of the paper model at 4096² already needs
#: hundreds of GB of activations.
MAX_TRAIN_SIZE = 4096

#: Largest batch: far above what any card holds at the smallest training size.
MAX_BATCH_SIZE = 65536

#: ``teacher.mode`` names; any other value must be an existing checkpoint file.
TEACHER_MODES = ("auto", "joint", "none")


def check_device(value: str, key: str) -> None:
    if value != "auto" and not (value in ("cpu", "cuda", "mps") or value.startswith("cuda:")):
        raise ConfigError(f"config value {key}={value!r} is not auto, cpu, cuda[:N] or mps")


def check_seed_value(value: int, key: str) -> None:
    from medspikeformer.data.base import check_seed

    check_seed(value, f"config value {key}")


def check_teacher_mode(value: str, key: str) -> None:
    if value not in TEACHER_MODES and not Path(value).is_file():
        raise ConfigError(
            f"config value {key}={value!r}: not auto, joint, none or an existing checkpoint file"
        )


def check_train_size(value: int, key: str) -> None:
    if value < 8:
        raise ConfigError(f"config value {key}={value} is too small (at least 8)")
    if value > MAX_TRAIN_SIZE:
        raise ConfigError(
            f"config value {key}={value} is too large (at most {MAX_TRAIN_SIZE}; train on "
            "crops or resized images, predict large ones with sliding windows)"
        )


def check_dataset_name(value: str, key: str) -> None:
    from medspikeformer import data as data_module

    lister = getattr(data_module, "list_datasets", None)
    if lister is None:
        return
    known = list(lister())
    if value not in known:
        raise ConfigError(f"unknown dataset {value!r} (known: {', '.join(sorted(known))})")


def check_two_numbers(value: list[float], key: str) -> None:
    if len(value) != 2:
        raise ConfigError(f"config value {key}={value} must hold two numbers")


def check_num_workers(value: object, key: str) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"config value {key}={value!r} must be an integer >= 0 or auto")


def num_workers_flag(text: str) -> int | str:
    """``--num-workers`` value: ``auto`` or an integer (argparse names the flag when it fails)."""
    return text if text == "auto" else int(text)


def check_output_name(value: str, key: str) -> None:
    # Path("") is the working folder: a run would write there without being asked to
    if not value.strip():
        raise ConfigError(
            f"config value {key}={value!r}: empty path (it would name the working folder); "
            "give a folder name"
        )
