"""Deterministic train/val/test splits.

Specs:

* ``"paper"`` — the authors' protocol: a random 80/20 train/test split with seed 41, drawn like
  scikit-learn's ``train_test_split(test_size=0.2, random_state=41)`` (``RandomState(seed)
  .permutation(n)``; the first ``ceil(0.2 n)`` go to test) over the sorted groups. The authors
  selected checkpoints on that test set, so ``val`` is the test part here (reproduction only; use a
  three-part ratio for honest model selection).
* ``"official"`` — the dataset's own partition (MoNuSeg training/test folders, the Inf-Net COVID
  folders, ISIC's training/validation/test folders). ``val`` is the official validation part where
  one exists, else the test part.
* ``"70/10/20"`` — train/val/test ratios drawn the same way (test first, then val, from one
  permutation); a two-part ``"80/20"`` is train/test with ``val`` = test.
* a path to a JSON file: ``{"train": [...], "val": [...], "test": [...]}`` or a file written by
  ``save_split`` (``{"ids": {...}}``). ``val`` may be omitted (= test).

Splits act on *groups* (for NIfTI volumes, all slices of one case), so no case straddles two parts.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from medspikeformer.errors import ConfigError, DataError

from .base import Sample

_RATIO = re.compile(r"^\d+(\.\d+)?(/\d+(\.\d+)?){1,2}$")


def parse_ratio(spec: str) -> tuple[float, float, float] | None:
    """``"70/10/20"`` → ``(0.7, 0.1, 0.2)``; ``"80/20"`` → ``(0.8, 0.0, 0.2)``; else None."""
    if not _RATIO.match(spec):
        return None
    parts = [float(p) for p in spec.split("/")]
    if len(parts) == 2:
        parts = [parts[0], 0.0, parts[1]]
    total = sum(parts)
    if total <= 0 or parts[0] <= 0:
        raise ConfigError(f"split spec {spec!r}: the train part must be positive")
    return parts[0] / total, parts[1] / total, parts[2] / total


def random_split(
    groups: list[str], ratios: tuple[float, float, float], seed: int
) -> dict[str, list[str]]:
    """Assign sorted unique ``groups`` to train/val/test by one seeded permutation."""
    groups = sorted(set(groups))
    n = len(groups)
    _, f_val, f_test = ratios
    n_test = math.ceil(f_test * n) if f_test > 0 else 0
    n_val = math.ceil(f_val * n) if f_val > 0 else 0
    perm = np.random.RandomState(seed).permutation(n)
    test = [groups[i] for i in perm[:n_test]]
    val = [groups[i] for i in perm[n_test : n_test + n_val]]
    train = [groups[i] for i in perm[n_test + n_val :]]
    return {"train": train, "val": val, "test": test}


def _from_file(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read split file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    # a fitting check trains and scores on the same images on purpose, and says so in the file
    allow_overlap = isinstance(data, dict) and data.get("allow_overlap") is True
    if isinstance(data, dict) and isinstance(data.get("ids"), dict):
        data = data["ids"]
    if not isinstance(data, dict) or "train" not in data or "test" not in data:
        raise DataError(f"{path}: split file needs lists 'train' and 'test' (and optionally 'val')")
    out: dict[str, list[str]] = {}
    for key in ("train", "val", "test"):
        ids = data.get(key, data["test"] if key == "val" else None)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DataError(f"{path}: split '{key}' must be a list of sample ids (strings)")
        out[key] = list(ids)
    # an id in train and in val/test is evaluated on what it trained on (val = test is allowed:
    # the two-part protocols do that)
    for other in () if allow_overlap else ("test", "val"):
        both = sorted(set(out["train"]) & set(out[other]))
        if both:
            raise DataError(
                f"{path}: {len(both)} id(s) in both 'train' and '{other}', e.g. {both[0]!r} "
                "(a sample must not be trained and evaluated on; a fitting check that means it sets "
                '"allow_overlap": true in the file)'
            )
    return out


def make_split(
    samples: list[Sample], spec: str | Path, seed: int, dataset: str
) -> tuple[dict[str, list[str]], str]:
    """Sample ids per split (``train``/``val``/``test``, each sorted) and the spec as recorded.

    Raises ``ConfigError`` for an unknown spec or ``"official"`` on a dataset without one, and
    ``DataError`` for a split file naming unknown ids.
    """
    ids = [s.id for s in samples]
    by_group: dict[str, list[str]] = {}
    for s in samples:
        by_group.setdefault(s.group or s.id, []).append(s.id)

    def expand(groups: list[str]) -> list[str]:
        return sorted(i for g in groups for i in by_group[g])

    spec_s = str(spec)
    if spec_s == "paper":
        parts = random_split(list(by_group), (0.8, 0.0, 0.2), seed)
        parts["val"] = parts["test"]
        return {k: expand(v) for k, v in parts.items()}, spec_s
    if spec_s == "official":
        part_of = {s.id: s.part for s in samples}
        if not samples or any(p is None for p in part_of.values()):
            raise ConfigError(
                f"dataset {dataset!r} at this root has no official split "
                "(use split_spec='paper', a ratio like '70/10/20', or a split file)"
            )
        out = {k: sorted(i for i in ids if part_of[i] == k) for k in ("train", "val", "test")}
        if not out["train"] or not out["test"]:
            raise ConfigError(
                f"dataset {dataset!r}: the official split needs both a training and a test part "
                "at this root"
            )
        if not out["val"]:
            out["val"] = out["test"]
        return out, spec_s
    ratios = parse_ratio(spec_s)
    if ratios is not None:
        parts = random_split(list(by_group), ratios, seed)
        if ratios[1] == 0:
            parts["val"] = parts["test"]
        return {k: expand(v) for k, v in parts.items()}, spec_s
    path = Path(spec_s).expanduser()
    if path.suffix.lower() == ".json" or path.exists():
        if not path.is_file():
            raise DataError(f"{path}: split file not found")
        out = _from_file(path)
        known = set(ids)
        for key, lst in out.items():
            unknown = [i for i in lst if i not in known]
            if unknown:
                raise DataError(
                    f"{path}: split '{key}' names {len(unknown)} id(s) not in the dataset, "
                    f"e.g. {unknown[0]!r}"
                )
        return {k: sorted(v) for k, v in out.items()}, str(path)
    raise ConfigError(
        f"unknown split spec {spec_s!r} (use 'paper', 'official', a ratio like '70/10/20', "
        "or a path to a JSON split file)"
    )


def split_summary(split_ids: dict[str, Any]) -> dict[str, int]:
    """Counts per split."""
    return {k: len(v) for k, v in split_ids.items()}
