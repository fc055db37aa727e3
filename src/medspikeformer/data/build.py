"""``build_dataset``: name + root + options → a ready ``SegmentationDataset``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from medspikeformer.errors import ConfigError, DataError
from medspikeformer.runtime import progress_enabled

from .augment import build_augment
from .base import DEFAULT_SEED, SPLITS, DatasetSource, SegmentationDataset, as_hw
from .cache import ArrayCache, default_cache_dir
from .labels import LabelSpec
from .registry import get_source_class
from .selection import choose_validation
from .splits import make_split


def build_source(name: str, root: str | Path | None = None, **options: Any) -> DatasetSource:
    """The layout reader for ``name`` at ``root`` (validates root and options)."""
    return get_source_class(name)(root, **options)


def _make_cache(cache_dir: Any) -> ArrayCache | None:
    if cache_dir is False or (isinstance(cache_dir, str) and cache_dir.lower() in ("none", "off")):
        return None
    return ArrayCache(default_cache_dir() if cache_dir in (None, True) else cache_dir)


def _split_file(spec: str) -> dict[str, Any] | None:
    """The JSON object of ``spec`` when it is a split file (``make_split`` has read it)."""
    path = Path(spec)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def build_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    size: int | tuple[int, int] = 256,
    split_spec: str | Path = "paper",
    augment: str = "none",
    in_channels: int = 3,
    cache_dir: str | Path | bool | None = None,
    seed: int = DEFAULT_SEED,
    on_error: str = "raise",
    labels: Any = None,
    validation: str = "train",
    val_fraction: float = 0.1,
    folds: int | None = None,
    fold: int | None = None,
    **options: Any,
) -> SegmentationDataset:
    """Build one split of a dataset.

    Args:
        name: one of ``list_datasets()``.
        root: the dataset folder as downloaded (``None`` for ``"synthetic"``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        size: training size, int or ``(H, W)``; images are resized to it.
        split_spec: ``"paper"``, ``"official"``, a ratio like ``"70/10/20"`` or a JSON split file.
        augment: ``"none"`` or ``"paper"``.
        in_channels: 1 or 3 (grey is replicated, RGB → luminance for 1).
        cache_dir: folder of the decoded-array cache; ``None`` = the default
            (``~/.cache/medspikeformer``), ``False`` = no cache.
        seed: seed of the random split (and of the synthetic images).
        on_error: ``"raise"`` (fail fast with ``DataError``) or ``"skip"`` (drop bad pairs; they
            are listed in ``dataset.skipped`` and ``split_info["skipped"]``).
        labels: ``None`` (binary masks) or the ``data.labels`` mapping / a
            :class:`~medspikeformer.data.labels.LabelSpec`: masks are label maps, items carry
            class indices (docs/data.md, "Multi-class labels").
        validation: ``"train"`` (checkpoint selection on ``val_fraction`` of the training cases,
            carved with ``seed``, unless the split names its own validation part; a split file's
            ``val`` is used as written) or ``"test"``
            (the paper's protocol: ``val`` is the test part where the split names none);
            :mod:`medspikeformer.data.selection`.
        val_fraction: the share of training cases carved under ``validation="train"``.
        folds, fold: fold ``fold`` of ``folds`` over the training + validation cases is the
            validation part (cross-validation); the test part is untouched.
        **options: loader options (see docs/data.md), e.g. ``include_normal=False`` for BUSI.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} (use one of {', '.join(SPLITS)})")
    if in_channels not in (1, 3):
        raise ConfigError(f"in_channels must be 1 or 3, got {in_channels}")
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    hw = as_hw(size)
    if labels is not None and not isinstance(labels, LabelSpec):
        labels = LabelSpec.from_mapping(labels)
    source = build_source(name, root, **options)
    if name == "synthetic":
        gen_seed = options.get("seed")
        source.gen_seed = int(seed if gen_seed is None else gen_seed)  # type: ignore[attr-defined]
        gen = options.get("size")
        source.gen_size = as_hw(gen) if gen is not None else hw  # type: ignore[attr-defined]
    aug = build_augment(augment)
    scan = source.scan()
    where = source.root if source.root is not None else name
    if not scan.samples and not scan.problems:
        raise DataError(f"{where}: no image/mask pairs found for dataset {name!r}")
    skipped: list[tuple[str, str]] = []
    if scan.problems:
        if on_error == "raise":
            more = len(scan.problems) - 1
            tail = f" (and {more} more problem(s); see 'medspikeformer data check')" if more else ""
            raise DataError(scan.problems[0] + tail)
        skipped.extend(("", p) for p in scan.problems)
    if not scan.samples:
        raise DataError(f"{where}: no usable image/mask pairs ({len(scan.problems)} problem(s))")
    ids = [s.id for s in scan.samples]
    dups = scan.duplicate_ids()
    if dups:
        raise DataError(f"{where}: duplicate sample id {dups[0]!r}")
    split_ids, spec = make_split(scan.samples, split_spec, seed, name)
    file = _split_file(spec)
    file_ids = file.get("ids") if file is not None and isinstance(file.get("ids"), dict) else file
    split_ids, selection = choose_validation(
        split_ids,
        {s.id: s.group or s.id for s in scan.samples},
        validation=validation,
        val_fraction=val_fraction,
        folds=folds,
        fold=fold,
        seed=seed,
        stratum_of={s.id: source.stratum(s) for s in scan.samples},
        stratified_by=source.stratum_name,
        val_named=None if file_ids is None else "val" in file_ids,
    )
    used_as_written = folds is None and file_ids is not None and "val" in file_ids
    if used_as_written and isinstance(file.get("validation"), dict):  # type: ignore[union-attr]
        selection = file["validation"]  # a run's split.json keeps its own record
    wanted = set(ids) if split == "all" else set(split_ids[split])
    samples = [s for s in scan.samples if s.id in wanted]
    cache = _make_cache(cache_dir) if source.cacheable else None

    info: dict[str, Any] = {
        "dataset": name,
        "root": str(source.root) if source.root is not None else None,
        "spec": spec,
        "seed": seed,
        "options": json.loads(json.dumps(source.opts, default=str)),
        "ids": split_ids,
        "validation": selection,
    }
    ds = SegmentationDataset(
        source, split, hw, split_ids, info, aug, in_channels, cache, samples, skipped, labels
    )
    if on_error == "skip" and source.needs_root:
        good = []
        checking = tqdm(
            samples, desc=f"checking {name}/{split}", leave=False, disable=not progress_enabled()
        )
        for i, s in enumerate(checking):
            try:
                ds.load_arrays(i)
            except DataError as exc:
                skipped.append((s.id, str(exc)))
                continue
            good.append(s)
        ds.samples = good
    info["skipped"] = [{"id": i, "problem": p} for i, p in skipped]
    return ds
