"""Which images select the checkpoint: the validation part of a split (docs/data.md, "Model
selection").

:func:`~medspikeformer.data.splits.make_split` draws the train/val/test parts a split spec names;
where the spec names no validation part (``paper``, ``80/20``, a split file without ``val``) its
``val`` is the test part. :func:`choose_validation` then applies ``data.validation``:

* ``"train"`` (default): carve ``val_fraction`` of the training *cases* (groups) as the validation
  part, seeded by the run seed, unless the split names a validation part of its own (an official
  val folder, a ``70/10/20`` ratio, a split file with ``val``, used as written);
* ``"test"``: the paper's protocol, the parts as drawn (``val`` = ``test`` where none is named);
* ``folds``/``fold``: K-fold cross-validation over the training + validation cases; fold ``fold``
  is the validation part, the others train; the test part is untouched.

Carves and folds act on groups (all slices of a volume together) and are stratified by the
layout's per-sample stratum (:meth:`DatasetSource.stratum`, e.g. BUSI's class folder) when it
declares one. The choice is recorded in ``split_info["validation"]`` (and so in ``split.json``):
``{"protocol": "carved" | "split" | "test" | "fold", "seed", "fraction" | "folds"+"fold",
"stratified_by", "cases"}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from medspikeformer.errors import ConfigError

__all__ = [
    "PROTOCOLS",
    "VALIDATION_CHOICES",
    "check_validation_options",
    "choose_validation",
    "protocol_line",
    "selection_protocol",
    "stratified_folds",
    "stratified_order",
]

#: Values of ``data.validation``.
VALIDATION_CHOICES = ("train", "test")
#: What ``split_info["validation"]["protocol"]`` may say.
PROTOCOLS = ("carved", "split", "test", "fold")


def stratified_order(
    groups: list[str], strata: Mapping[str, str | None], rng: np.random.RandomState
) -> list[str]:
    """``groups`` in a seeded order in which every stratum is spread evenly.

    Each stratum is permuted and its ``r``-th member placed at ``(r + u) / n_s`` (``u`` one random
    offset per stratum, ``n_s`` its size); sorting by that position interleaves the strata in
    proportion, so any prefix (a carve) holds each stratum in proportion to its size, give or
    take one.
    """
    by_stratum: dict[str, list[str]] = {}
    for g in sorted(set(groups)):
        by_stratum.setdefault(str(strata.get(g)), []).append(g)
    keyed: list[tuple[float, str]] = []
    for _, members in sorted(by_stratum.items()):
        perm = rng.permutation(len(members))
        offset = float(rng.random_sample())
        keyed += [((r + offset) / len(members), members[i]) for r, i in enumerate(perm)]
    return [g for _, g in sorted(keyed)]


def stratified_folds(
    groups: list[str], strata: Mapping[str, str | None], folds: int, rng: np.random.RandomState
) -> dict[str, int]:
    """Group → fold: each stratum, permuted, dealt round-robin into the folds, the deal going on
    where the previous stratum stopped; so every stratum's counts per fold, and the fold sizes,
    differ by at most one."""
    by_stratum: dict[str, list[str]] = {}
    for g in sorted(set(groups)):
        by_stratum.setdefault(str(strata.get(g)), []).append(g)
    out: dict[str, int] = {}
    dealt = 0
    for _, members in sorted(by_stratum.items()):
        for i in rng.permutation(len(members)):
            out[members[i]] = dealt % folds
            dealt += 1
    return out


def _group_strata(
    group_of: Mapping[str, str], stratum_of: Mapping[str, str | None]
) -> dict[str, str | None]:
    """One stratum per group: the sorted strata of its samples joined (None when none has one)."""
    seen: dict[str, set[str]] = {}
    for sid, group in group_of.items():
        s = stratum_of.get(sid)
        seen.setdefault(group, set())
        if s is not None:
            seen[group].add(s)
    return {g: "+".join(sorted(s)) if s else None for g, s in seen.items()}


def choose_validation(
    parts: dict[str, list[str]],
    group_of: Mapping[str, str],
    *,
    validation: str = "train",
    val_fraction: float = 0.1,
    folds: int | None = None,
    fold: int | None = None,
    seed: int = 0,
    stratum_of: Mapping[str, str | None] | None = None,
    stratified_by: str | None = None,
    val_named: bool | None = None,
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Apply ``data.validation`` / ``data.folds`` to the parts drawn by ``make_split``.

    Args:
        parts: ``{"train", "val", "test"}`` sample ids (``val`` = ``test`` when the split names no
            validation part).
        group_of: sample id → group (case); groups never straddle parts.
        validation, val_fraction, folds, fold: the ``data`` options of the same names.
        seed: the run seed (the carve and the fold assignment draw from it).
        stratum_of: sample id → stratum (e.g. a class), or None where unknown.
        stratified_by: what the strata are, for the record (None: not stratified).
        val_named: whether the split spec names ``val`` itself (a split file with ``val``): it
            is then used as written, whatever ``validation`` says (a ``val`` sharing images
            with ``test`` is recorded as selection on the test part). ``None``: a ``val`` apart
            from ``test`` is named, one equal to it is the stand-in of an unnamed one.

    Returns the parts (each sorted) and the record kept as ``split_info["validation"]``.
    """
    check_validation_options(validation, val_fraction, folds, fold, where="data")
    val, test = parts["val"], parts["test"]
    own_val = bool(val) and not set(val) & set(test)  # a validation part apart from the test
    named = own_val if val_named is None else val_named and bool(val)  # "val": [] names none
    strata = _group_strata(group_of, stratum_of or {})
    if not any(strata.values()):
        stratified_by = None
    rng = np.random.RandomState(seed)

    def groups(ids: list[str]) -> list[str]:
        return sorted({group_of[i] for i in ids})

    def expand(gs: set[str], ids: list[str]) -> list[str]:
        return sorted(i for i in ids if group_of[i] in gs)

    if folds is not None:
        pool = parts["train"] + (val if own_val else [])
        pool_groups = groups(pool)
        if len(pool_groups) < folds:
            raise ConfigError(
                f"config value data.folds={folds}: only {len(pool_groups)} training case(s) to "
                "share among the folds"
            )
        fold_of = stratified_folds(pool_groups, strata, folds, rng)
        held = {g for g, k in fold_of.items() if k == fold}
        out = {"train": expand(set(pool_groups) - held, pool), "val": expand(held, pool)}
        record: dict[str, Any] = {
            "protocol": "fold",
            "folds": folds,
            "fold": fold,
            "seed": seed,
            "stratified_by": stratified_by,
            "cases": sorted(held),
        }
        return {**out, "test": sorted(test)}, record
    if named:
        if own_val:
            return {k: sorted(v) for k, v in parts.items()}, {"protocol": "split"}
        reason = "the split file's val part holds test images"
        return {k: sorted(v) for k, v in parts.items()}, {"protocol": "test", "reason": reason}
    if validation == "test":
        return {k: sorted(v) for k, v in parts.items()}, {"protocol": "test"}
    train_groups = groups(parts["train"])
    n_val = math.ceil(val_fraction * len(train_groups))
    if len(train_groups) < 2:
        # nothing to carve from one case: the parts as drawn, and the record (and so every
        # report) says the selection is on the test part
        reason = f"{len(train_groups)} training case(s): too few to carve a validation part"
        return {k: sorted(v) for k, v in parts.items()}, {"protocol": "test", "reason": reason}
    carved = set(stratified_order(train_groups, strata, rng)[:n_val])
    out = {
        "train": expand(set(train_groups) - carved, parts["train"]),
        "val": expand(carved, parts["train"]),
        "test": sorted(test),
    }
    record = {
        "protocol": "carved",
        "fraction": val_fraction,
        "seed": seed,
        "stratified_by": stratified_by,
        "cases": sorted(carved),
    }
    return out, record


def check_validation_options(
    validation: str, val_fraction: float, folds: int | None, fold: int | None, where: str
) -> None:
    """``ConfigError`` (naming ``where.KEY``) for a choice, range or pairing out of bounds."""
    if validation not in VALIDATION_CHOICES:
        raise ConfigError(
            f"config value {where}.validation={validation!r}: use one of "
            f"{', '.join(VALIDATION_CHOICES)}"
        )
    if not 0.0 < val_fraction <= 0.5:
        raise ConfigError(f"config value {where}.val_fraction={val_fraction} must lie in (0, 0.5]")
    if (folds is None) != (fold is None):
        raise ConfigError(
            f"config values {where}.folds and {where}.fold go together (fold K of N folds); "
            f"got folds={folds}, fold={fold}"
        )
    if folds is not None and fold is not None:
        if folds < 2:
            raise ConfigError(f"config value {where}.folds={folds} must be at least 2")
        if not 0 <= fold < folds:
            raise ConfigError(f"config value {where}.fold={fold} must lie in [0, {folds})")
        if validation == "test":
            raise ConfigError(
                f"config values {where}.folds and {where}.validation=test contradict: a fold "
                "selects on its own held-out cases, never on the test part"
            )


def selection_protocol(split_info: Mapping[str, Any]) -> str:
    """The protocol a split (``split_info`` / ``split.json``) selected checkpoints under; a file
    written before the record existed: ``test`` when its ``val`` holds test images, else
    ``split``."""
    record = split_info.get("validation")
    if isinstance(record, Mapping) and record.get("protocol") in PROTOCOLS:
        return str(record["protocol"])
    ids = split_info.get("ids") if isinstance(split_info.get("ids"), Mapping) else split_info
    val, test = ids.get("val"), ids.get("test")  # type: ignore[union-attr]
    if val is None or (isinstance(test, list) and set(val) & set(test)):
        return "test"
    return "split"


def protocol_line(split_info: Mapping[str, Any]) -> str:
    """One line saying which images selected the checkpoint."""
    record = split_info.get("validation")
    record = record if isinstance(record, Mapping) else {}
    protocol = selection_protocol(split_info)
    if protocol == "test":
        why = record.get("reason") or "the paper's protocol, data.validation: test"
        return (
            f"model selection: on the TEST part ({why}) — scores on the test part of the best "
            "checkpoint are optimistic"
        )
    if protocol == "carved":
        return (
            f"model selection: on {len(record.get('cases') or [])} case(s) carved from training "
            f"(data.val_fraction {record.get('fraction')}, seed {record.get('seed')})"
        )
    if protocol == "fold":
        return (
            f"model selection: on fold {record.get('fold')} of {record.get('folds')} "
            f"(seed {record.get('seed')}); the test part is untouched"
        )
    return "model selection: on the split's own validation part"


def evaluation_note(protocol: str, split: str) -> str | None:
    """The one line ``evaluate`` prints when it scores images that chose the checkpoint: a
    warning for the test part under the paper's protocol, a note for the validation part."""
    if protocol == "test" and split in ("test", "val", "all"):
        return (
            f"warning: this checkpoint was selected on the test part (the paper's protocol, "
            f"data.validation: test); its {split!r} scores are optimistic"
        )
    if split == "val":
        return f"note: the {split!r} part is the one this checkpoint was selected on"
    return None
