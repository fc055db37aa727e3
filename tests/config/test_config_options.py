"""The option declarations (``medspikeformer.config``): each fact has one home, and what is
derived from the declarations — validation, the resume list, the ``train`` flags — behaves as
the hand-kept copies did."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import re
import typing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.cli import build_parser, main
from medspikeformer.config import (
    ConfigWriteError,
    TrainConfig,
    config_from_dict,
    dotted_to_nested,
    iter_options,
    load_config,
    option_keys,
    overrides_from_args,
    read_known_config,
    resume_flags,
    resume_may_change,
    save_config,
    validate_config,
)
from medspikeformer.engine.checkpoint import CheckpointError
from medspikeformer.errors import ConfigError
from medspikeformer.precision import PRECISIONS

SRC = Path(__file__).resolve().parents[2] / "src" / "medspikeformer"

#: What may change on resume before the declarations (engine/resume_check.py's hand-kept set).
RESUME_BEFORE = {
    "out",
    "train.epochs",
    "train.device",
    "train.precision",
    "train.progress",
    "train.max_time_s",
    "train.compile",
    "train.compile_mode",
    "train.val_batch_size",
    "train.loggers",
    "train.init_from",
    "data.num_workers",
    "data.cache_dir",
    "data.root",
}

#: ``train --help``'s flags before the declarations.
TRAIN_FLAGS_BEFORE = {
    "-h", "--help", "--config", "--recipe", "--set", "--resume", "--resume-force", "--epochs",
    "--batch-size", "--lr", "--seed", "--model", "--dataset", "--data-root", "--size", "--split",
    "--num-workers", "--teacher", "--init-from", "--logger", "--out", "--device", "--precision",
    "--compile", "--deterministic", "--no-progress", "--folds", "--fold",
}  # fmt: skip


def _source_files() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(SRC.rglob("*.py"))]


def _homes(pattern: str) -> list[str]:
    rx = re.compile(pattern)
    return [str(p.relative_to(SRC)) for p, text in _source_files() if rx.search(text)]


# ----------------------------------------------------------------------------- one home


def test_the_precision_choices_are_written_once() -> None:
    """A list or tuple literal naming fp16 and bf16 lives in precision.py only; the config and
    the CLI flags of train, evaluate and predict take it from there."""
    assert _homes(r"[\[(]\s*\"auto\",\s*\"fp32\",\s*\"bf16\",\s*\"fp16\"") == ["precision.py"]
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("train", "evaluate", "predict"):
        action = next(a for a in sub.choices[command]._actions if a.dest == "precision")
        assert tuple(action.choices) == PRECISIONS, command


def test_the_dotted_key_splitter_and_the_resume_list_are_written_once() -> None:
    assert _homes(r"node\.setdefault\(part, \{\}\)") == ["config/layering.py"]
    assert _homes(r"\"train\.compile_mode\"") == []  # no hand-kept resume list anywhere
    assert _homes(r"RESUMABLE\b") == []
    assert _homes(r"def _known_keys\b") == ["config/coerce.py"]  # one tolerant reader


def test_every_field_is_declared() -> None:
    """Every leaf of the config dataclasses carries an Option (iter_options raises otherwise),
    and the walk reaches the nested sections."""
    keys = option_keys(TrainConfig)
    assert len(keys) == len(set(keys))
    assert {"teacher.align.weight", "model.name", "out", "data.val_fraction"} <= set(keys)

    def leaves(cls: type) -> int:
        hints = typing.get_type_hints(cls)
        return sum(
            leaves(hints[f.name]) if dataclasses.is_dataclass(hints[f.name]) else 1
            for f in dataclasses.fields(cls)
        )

    assert len(keys) == leaves(TrainConfig)


# ----------------------------------------------------------------------------- resume


def test_the_resume_list_is_the_one_the_trainer_kept() -> None:
    from medspikeformer.engine.resume_check import RESUME_MAY_CHANGE

    assert resume_may_change(TrainConfig) == RESUME_BEFORE
    assert RESUME_MAY_CHANGE == RESUME_BEFORE


def test_resume_flags_are_those_of_the_resumable_options() -> None:
    """The CLI's copy ({--epochs, --device, --precision, --num-workers}) was narrower than the
    trainer's; the derived list holds every flag whose option may change (docs/training.md)."""
    assert set(resume_flags()) == {
        "--epochs", "--device", "--precision", "--num-workers", "--data-root", "--compile",
        "--no-progress", "--init-from", "--logger",
    }  # fmt: skip


@pytest.mark.parametrize("flag", [["--batch-size", "4"], ["--deterministic"], ["--out", "x"]])
def test_resume_refuses_a_flag_of_an_option_that_may_not_change(
    flag: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--resume", str(tmp_path), *flag]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"(got {flag[0]})" in err and "--epochs" in err


# ----------------------------------------------------------------------------- flags


def test_train_help_lists_the_same_flags() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    flags = {s for a in sub.choices["train"]._actions for s in a.option_strings}
    assert flags == TRAIN_FLAGS_BEFORE


def test_flags_become_the_same_overrides_as_before() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["train", "--epochs", "3", "--lr", "0.01", "--model", "unet", "--split", "70/10/20",
         "--compile", "--no-progress", "--logger", "a", "--logger", "b", "--out", "r",
         "--data-root", "d", "--precision", "bf16"]
    )  # fmt: skip
    assert overrides_from_args(args) == {
        "model": {"name": "unet"},
        "data": {"root": "d", "split_spec": "70/10/20"},
        "optim": {"lr": 0.01},
        "train": {
            "epochs": 3,
            "precision": "bf16",
            "compile": True,
            "progress": False,
            "loggers": ["a", "b"],
        },
        "out": "r",
    }
    assert overrides_from_args(parser.parse_args(["train"])) == {}
    assert isinstance(args, argparse.Namespace)


def test_dotted_keys_merge_into_one_section() -> None:
    assert dotted_to_nested({"a.b": 1, "a.c.d": 2, "e": 3}) == {
        "a": {"b": 1, "c": {"d": 2}},
        "e": 3,
    }


# ----------------------------------------------------------------------------- validation


def _outside(spec) -> object | None:
    """A value just outside the declared bounds or choices of ``spec`` (None: none declared)."""
    opt = spec.option
    if opt.choices is not None:
        return "no-such-choice" if isinstance(opt.choices[0], str) else 7
    for bound, step in ((opt.ge, -1), (opt.gt, 0), (opt.le, 1), (opt.lt, 0)):
        if bound is not None:
            value = bound + step if step else bound
            return [value, value] if spec.key == "optim.betas" else value
    return None


BOUNDED = [s for s in iter_options(TrainConfig) if _outside(s) is not None]


@pytest.mark.parametrize("spec", BOUNDED, ids=[s.key for s in BOUNDED])
def test_every_declared_bound_and_choice_is_enforced(spec) -> None:
    value = _outside(spec)
    config = load_config(overrides=dotted_to_nested({spec.key: value}))
    with pytest.raises(ConfigError) as info:
        validate_config(config, check_model=False)
    message = str(info.value)
    assert spec.key in message and "\n" not in message


def test_fold_must_lie_below_folds() -> None:
    validate_config(load_config(sets=["data.folds=5", "data.fold=4"]), check_model=False)
    with pytest.raises(ConfigError, match=r"data\.fold=5 must lie in \[0, 5\)"):
        validate_config(load_config(sets=["data.folds=5", "data.fold=5"]), check_model=False)
    with pytest.raises(ConfigError, match=r"data\.folds and data\.fold go together"):
        validate_config(load_config(sets=["data.fold=0"]), check_model=False)


@settings(max_examples=30, deadline=None)
@given(
    key=st.sampled_from([s.key for s in iter_options(TrainConfig) if s.type in (float, "float")]),
    value=st.sampled_from([".nan", ".inf", "-.inf"]),
)
def test_no_float_option_takes_nan_or_inf(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}=-?(nan|inf) must be a finite"):
        validate_config(load_config(sets=[f"{key}={value}"]), check_model=False)


def test_set_nan_alignment_weight_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "synthetic", "--set", "teacher.align.weight=nan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "teacher.align.weight=nan must be a finite" in err


def test_model_options_of_the_wrong_type_are_one_config_error() -> None:
    with pytest.raises(ConfigError, match=r"model\.options must be a mapping"):
        config_from_dict({"model": {"name": "unet", "options": "abc"}})


def test_the_tolerant_reader_drops_unknown_keys_only() -> None:
    config = read_known_config(
        {"train": {"epochs": 3, "from_the_future": 1}, "new_section": {}, "model": {"x": 1}}
    )
    assert config.train.epochs == 3 and config.model.options == {"x": 1}
    with pytest.raises(ConfigError, match=r"train\.epochs must be an integer"):
        read_known_config({"train": {"epochs": "many"}})


# ----------------------------------------------------------------------------- writing


def test_a_full_disk_writing_config_yaml_names_config_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    target = tmp_path / "run" / "config.yaml"
    with pytest.raises(ConfigWriteError) as info:
        save_config(TrainConfig(), target)
    assert not isinstance(info.value, CheckpointError)
    message = str(info.value)
    assert "config.yaml" in message and "No space left" in message and "\n" not in message
    assert list(target.parent.iterdir()) == []  # no temp file, no half-written config
