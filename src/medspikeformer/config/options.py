"""The declaration of one training option, and the walks over all of them.

Every field of the config dataclasses (:mod:`medspikeformer.config.schema`) is declared with
:func:`option`: its default, choices or bounds, whether it may change on ``--resume``, its
``train`` flag and help. From these declarations (and from nothing else) come validation
(:mod:`~medspikeformer.config.validate`), the resume list (:func:`resume_may_change`), the
``train`` flags (:mod:`~medspikeformer.config.flags`) and the config fuzzer's field list
(:func:`option_keys`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Union

__all__ = [
    "META_KEY",
    "Option",
    "OptionField",
    "iter_options",
    "option",
    "option_keys",
    "resume_may_change",
    "strip_optional",
]

#: The key of a dataclass field's ``metadata`` that holds its :class:`Option`.
META_KEY = "option"


@dataclass(frozen=True)
class Option:
    """What one option declares besides its type and default.

    ``choices``: the allowed values. ``ge`` / ``gt`` / ``le`` / ``lt``: bounds of a number (a
    list's numbers each). ``resume``: may differ between a run and its ``--resume`` (it changes
    how or how long the run goes on, not what an epoch computes). ``flag``: the ``train`` flag
    (``--epochs``); ``action``: ``store_true`` / ``store_false`` / ``append`` for flags that are
    not ``--flag VALUE``; ``flag_type``: the flag's value type where it is not the field's
    (``--split`` gives a string to a free-form field). ``check``: a function ``(value, key)`` for
    rules that are not a choice or a bound (it raises ``ConfigError``). ``help``: the one line
    shown by ``train --help`` and docs.
    """

    help: str = ""
    choices: tuple[Any, ...] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    resume: bool = False
    flag: str | None = None
    action: str | None = None
    flag_type: type | None = None
    metavar: str | None = None
    check: Callable[[Any, str], None] | None = None


def option(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    **declared: Any,
) -> Any:
    """A dataclass field carrying its :class:`Option` (``declared`` are its attributes)."""
    meta = {META_KEY: Option(**declared)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; any other type → ``(type, False)``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        return tp, True
    return tp, False


@dataclass(frozen=True)
class OptionField:
    """One declared option as the walks see it: dotted ``key``, annotated ``type``, default."""

    key: str
    name: str
    type: Any
    default: Any
    option: Option

    @property
    def nullable(self) -> bool:
        return strip_optional(self.type)[1]


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def iter_options(cls: type, prefix: str = "") -> Iterator[OptionField]:
    """Every declared option below the config dataclass ``cls`` (``TrainConfig`` for the whole
    config) with its dotted key, depth first; sections (nested dataclasses) are walked, not
    listed. A field declared without :func:`option` is a ``TypeError``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from iter_options(tp, f"{key}.")
            continue
        declared = f.metadata.get(META_KEY)
        if declared is None:
            raise TypeError(f"config field {key} is not declared with option()")
        yield OptionField(key, f.name, tp, _default(f), declared)


def resume_may_change(cls: type) -> frozenset[str]:
    """The dotted keys of ``cls`` that may differ between a run and its ``--resume``
    (declared ``resume=True``)."""
    return frozenset(o.key for o in iter_options(cls) if o.option.resume)


def option_keys(cls: type) -> list[str]:
    """Every declared option's dotted key (what the config fuzzer writes values into)."""
    return [o.key for o in iter_options(cls)]
