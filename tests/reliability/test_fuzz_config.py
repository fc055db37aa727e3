"""Fuzzing the config loader (issue 16): ``load_config`` + ``validate_config`` on hostile YAML.

Property: for any file, loading and validating it either gives a ``TrainConfig`` — which
``save_config`` writes and ``load_config`` reads back unchanged — or raises ``ConfigError`` naming
the file or the field; nothing else escapes and no case runs longer than ``CASE_TIME_LIMIT``.

Inputs, one file per case:

* ``typed`` — a config whose known fields get values of any type and range (huge and negative
  integers, NaN/±inf, strings, lists, nested mappings, null), plus unknown keys;
* ``aliases`` — a valid config with anchors and aliases (``&a`` / ``*a``, nested, in free-form
  fields such as ``data.cache_dir``) — always refused;
* ``encoded`` — a valid config in another encoding (UTF-16, Latin-1 with non-ASCII, UTF-8 BOM)
  or with random bytes appended;
* ``mutated`` — byte mutations of ``configs/kvasir.yaml``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspikeformer.config import option_keys
from medspikeformer.engine.config import (
    TrainConfig,
    config_to_dict,
    load_config,
    save_config,
    validate_config,
)
from medspikeformer.errors import ConfigError

from .fuzzing import (
    CASE_TIME_LIMIT,
    QUICK_EXAMPLES,
    SLOW_EXAMPLES,
    FuzzLog,
    mutate,
    time_limit,
)
from .fuzzing import mutations as mutation_lists
from .helpers import REPO

SEED_CONFIG = (REPO / "configs" / "kvasir.yaml").read_bytes()

#: The model's own options (not declared in the config schema: every model family has others).
MODEL_OPTIONS = ["timesteps", "base_channels", "num_units"]

#: Known fields by section (what the fuzzer writes values into): every declared option, from
#: the declarations themselves — a new option is fuzzed without an edit here.
FIELDS: dict[str, list[str]] = {}
for _key in option_keys(TrainConfig):
    _section, _, _name = _key.rpartition(".")
    FIELDS.setdefault(_section, []).append(_name)
FIELDS["model"] = [*FIELDS["model"], *MODEL_OPTIONS]


_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1e-4, 3e-3, 0.999, 1.5, -1.0]),
    st.text(max_size=12),
    st.sampled_from(["adam", "sgd", "cosine", "plateau", "paper", "70/10/20", "cpu", "auto"]),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=8,
)


@st.composite
def typed_configs(draw: st.DrawFn) -> dict[str, Any]:
    cfg: dict[str, Any] = {"data": {"dataset": "synthetic", "size": 32}}
    for _ in range(draw(st.integers(1, 6))):
        section = draw(st.sampled_from([*FIELDS, "unknown_section"]))
        key = draw(st.sampled_from([*FIELDS.get(section, []), "no_such_key"]))
        node: Any = cfg
        for part in section.split(".") if section else []:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[key] = draw(_value)
    if draw(st.booleans()):
        whole = draw(st.sampled_from([s for s in FIELDS if s and "." not in s]))
        cfg[whole] = draw(_value)  # a whole section of any type
    return cfg


def _alias_document(depth: int, width: int, where: str) -> str:
    lines = ["a0: &a0 [x, x]"]
    for i in range(1, depth + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    body = "\n".join("    " + line for line in lines)
    return f"data:\n  dataset: synthetic\n  {where}:\n{body}\n"


ENCODINGS = ["utf-16", "utf-16-le", "latin-1", "utf-8-sig", "cp1252", "utf-32"]


def check_config(path: Path, log: FuzzLog, kind: str) -> str:
    """Load + validate ``path``; assert the property; log and return the outcome."""
    log.case()
    try:
        with time_limit(CASE_TIME_LIMIT, str(path)):
            config = load_config(path)
            validate_config(config, check_model=False)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message.strip(), message
        log.add(f"{kind}:ConfigError")
        return "ConfigError"
    # Valid: it must survive the run directory's round trip unchanged.
    again = path.with_suffix(".saved.yaml")
    save_config(config, again)
    assert config_to_dict(load_config(again)) == config_to_dict(config)
    again.unlink()
    log.add(f"{kind}:valid")
    return "valid"


def _fuzz(tmp_path: Path, examples: int, log: FuzzLog) -> None:
    counter = itertools.count()

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        kind=st.sampled_from(["typed", "aliases", "encoded", "mutated"]),
        cfg=typed_configs(),
        depth=st.integers(1, 12),
        width=st.integers(1, 12),
        where=st.sampled_from(["cache_dir", "options", "split_spec", "root"]),
        encoding=st.sampled_from(ENCODINGS),
        tail=st.binary(max_size=64),
        ops=mutation_lists,
    )
    def run(
        kind: str,
        cfg: dict,
        depth: int,
        width: int,
        where: str,
        encoding: str,
        tail: bytes,
        ops: list,
    ) -> None:
        if kind == "typed":
            data = yaml.safe_dump(cfg, allow_unicode=True).encode("utf-8", "surrogatepass")
        elif kind == "aliases":
            data = _alias_document(depth, width, where).encode()
        elif kind == "encoded":
            text = "data: {dataset: synthetic, size: 32, root: 'données/ü'}\n"
            data = text.encode(encoding) + (tail if encoding == "latin-1" else b"")
        else:
            data = mutate(SEED_CONFIG, ops)
        path = tmp_path / f"case{next(counter)}.yaml"
        path.write_bytes(data)
        try:
            outcome = check_config(path, log, kind)
            if kind == "aliases":
                assert outcome == "ConfigError", path.read_text()
        finally:
            path.unlink()

    run()


def test_alias_documents_are_always_refused(tmp_path: Path) -> None:
    """The alias form of the fuzzer on its own: refused at every depth, width and field."""
    for depth, width, where in [(1, 1, "cache_dir"), (3, 5, "options"), (12, 12, "cache_dir")]:
        path = tmp_path / "a.yaml"
        path.write_text(_alias_document(depth, width, where))
        with pytest.raises(ConfigError, match="alias"):
            load_config(path)


def test_fuzz_config_loader_quick(tmp_path: Path, record_property: object) -> None:
    """Typed/alias/encoded/mutated configs: a valid config or ConfigError (quick variant)."""
    log = FuzzLog("config loader (quick)")
    _fuzz(tmp_path, QUICK_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= QUICK_EXAMPLES // 2
    assert sum(n for k, n in log.outcomes.items() if k.endswith("ConfigError")) > 0


@pytest.mark.slow
def test_fuzz_config_loader_slow(tmp_path: Path, record_property: object) -> None:
    """As the quick variant, with ``SLOW_EXAMPLES`` cases."""
    log = FuzzLog("config loader (slow)")
    _fuzz(tmp_path, SLOW_EXAMPLES, log)
    log.report(record_property)
    assert log.cases >= SLOW_EXAMPLES // 2
