"""What ``--resume`` checks before continuing a run: the config and the split it saved.

A resumed run must be the run it continues. Its ``config.yaml`` can be edited between the two
processes and its data folder can gain or lose images; either would silently change what the
remaining epochs train on (a former test image drawn into train, another image size or T). So the
config that would be used now is compared field by field with ``last.pt``'s ``train_config``, and
the split that would be drawn now with ``RUN_DIR/split.json``; a difference is a ``ConfigError``
naming the fields (or ids), unless ``--resume-force`` is given — then the run continues with the
new config but always with the saved split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from medspikeformer.config import (
    TrainConfig,
    config_from_dict,
    config_to_dict,
    resume_may_change,
)
from medspikeformer.errors import ConfigError

__all__ = ["RESUME_MAY_CHANGE", "config_differences", "split_differences"]

#: Fields that may differ on resume: those declared ``resume=True``
#: (:mod:`medspikeformer.config.schema`) — they change how or how long the run goes on, not what
#: it computes per epoch (``train.epochs`` extends or shortens it; a cosine schedule is re-planned).
RESUME_MAY_CHANGE = resume_may_change(TrainConfig)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _normalise(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def config_differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``"field: saved → now"`` for every field outside :data:`RESUME_MAY_CHANGE` that differs.

    ``saved`` (a checkpoint's ``train_config``) is read back through the config schema first, so
    defaults added since it was written do not count as differences.
    """
    with contextlib.suppress(ConfigError):  # an older or foreign schema: compare the raw fields
        saved = config_to_dict(config_from_dict(saved))
    old, new = dict(_flatten(saved)), dict(_flatten(now))
    out = []
    for key in sorted(set(old) | set(new)):
        if key in RESUME_MAY_CHANGE:
            continue
        a, b = _normalise(old.get(key, "<unset>")), _normalise(new.get(key, "<unset>"))
        if a != b:
            out.append(f"{key}: {a!r} → {b!r}")
    return out


def split_differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Per part (train/val/test), how the ids drawn now differ from those in ``split.json``."""
    out = []
    saved_ids, now_ids = saved.get("ids") or {}, now.get("ids") or {}
    for part in ("train", "val", "test"):
        a, b = set(saved_ids.get(part) or []), set(now_ids.get(part) or [])
        if a == b:
            continue
        added, removed = sorted(b - a), sorted(a - b)
        what = []
        if added:
            what.append(f"{len(added)} new (e.g. {added[0]!r})")
        if removed:
            what.append(f"{len(removed)} gone (e.g. {removed[0]!r})")
        out.append(f"{part}: {', '.join(what)}")
    return out
