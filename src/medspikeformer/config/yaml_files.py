"""Config files: where a named config lives, the safe YAML reader and the writer of ``config.yaml``.

The reader refuses what a config never needs and an attacker could use: YAML aliases ("billion
laughs"), files over :data:`MAX_CONFIG_BYTES`, duplicate keys (YAML keeps the last silently);
every refusal is one ``ConfigError`` line naming the file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from medspikeformer import outputs
from medspikeformer.config.schema import TrainConfig, config_to_dict
from medspikeformer.errors import ConfigError

__all__ = [
    "CONFIG_DIR",
    "MAX_CONFIG_BYTES",
    "ConfigWriteError",
    "find_config_file",
    "read_yaml",
    "safe_yaml_load",
    "save_config",
]

#: The shipped dataset configs (and ``recipes/``): package data of ``medspikeformer``, so a wheel
#: install finds them as a checkout does (docs/training.md, "Where configs come from").
CONFIG_DIR = Path(str(resources.files("medspikeformer") / "configs"))


def find_config_file(name_or_path: str | Path, kind: str = "config") -> Path:
    """Resolve ``kvasir`` / ``kvasir.yaml`` / a path: an existing file, else the shipped configs
    (:data:`CONFIG_DIR`, ``recipes/`` for ``kind='recipe'``), else ``./configs/`` of the current
    folder (a user's own)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    sub = CONFIG_DIR / "recipes" if kind == "recipe" else CONFIG_DIR
    for base in (sub, Path.cwd() / "configs" / ("recipes" if kind == "recipe" else "")):
        for candidate in (base / path.name, base / f"{path.name}.yaml"):
            if candidate.is_file():
                return candidate
    known = sorted(p.stem for p in sub.glob("*.yaml")) if sub.is_dir() else []
    raise ConfigError(
        f"{name_or_path}: {kind} file not found (known {kind}s: {', '.join(known) or 'none'})"
    )


#: A config file larger than this is refused unread (configs are a few kB).
MAX_CONFIG_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``): a few hundred bytes of nested aliases
    expand to gigabytes ("billion laughs"), and no config needs them; and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"YAML alias *{event.anchor} is not allowed in a config",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # a key given twice: YAML keeps the last silently, so an edit above a forgotten line
        # would change nothing
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} in a mapping", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def safe_yaml_load(text: str) -> Any:
    """``yaml.safe_load`` without aliases (:class:`_NoAliasLoader`); raises ``yaml.YAMLError``."""
    loader = _NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, oversized, non-UTF-8 or malformed file, or one using YAML
    aliases → ConfigError naming it."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: config file of {path.stat().st_size} bytes is larger than "
                f"{MAX_CONFIG_BYTES} bytes"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: config is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        data = safe_yaml_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        problem = getattr(exc, "problem", None)
        shown = ("alias", "duplicate key")  # our own refusals; the parser's wording is noise
        detail = f": {problem}" if problem and any(w in str(problem) for w in shown) else ""
        raise ConfigError(f"{path}: malformed YAML{where}{detail}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


class ConfigWriteError(outputs.OutputError):
    """``config.yaml`` (a run's resolved config) cannot be written — a full or read-only disk
    names the config file, not a checkpoint."""


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically through
    :mod:`medspikeformer.outputs`; an ``OSError`` → :class:`ConfigWriteError` naming ``path``."""
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    outputs.atomic_write_bytes(path, text.encode(), error=ConfigWriteError)
