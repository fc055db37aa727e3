"""Package layering: no module of ``src/medspikeformer`` imports a higher layer, and the
subpackages import each other without a cycle.

The layers, lowest first (docs/development.md draws the same diagram)::

    errors, runtime, precision,    rank 0  helpers with no package dependency; anyone may import
      outputs, allocator
    neurons                        rank 1
    layers                         rank 2  spike-saving conv, ConvBN, SpikeConv, [T, B] helpers
    attention                      rank 3
    models, the package root       rank 4  (the root re-exports create_model from models)
    losses, metrics, data,         rank 5  consumers of tensors and models; they may import
      viz, analysis, profile               each other but not in a cycle
    config                         rank 6  training options, each declared once
    engine                         rank 7  training
    inference                      rank 8
    experiments                    rank 9
    cli, __main__                  rank 10

``viz`` (figures from arrays) and ``analysis`` (spike check, profiler; ``profile`` is its
backward-compatible re-export) sit beside ``data`` / ``metrics``: they take a model or arrays
and need nothing above ``models``, while ``inference`` and ``experiments`` use them.

The scan reads every ``import`` with ``ast``, function-level ones included, so a lazy import
cannot hide an upward dependency. A new subpackage must be placed in ``RANKS``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from .helpers import REPO

PACKAGE = "medspikeformer"
SRC = REPO / "src" / PACKAGE
ROOT = "<root>"  # the package's __init__.py

RANKS: dict[str, int] = {
    "errors": 0,
    "runtime": 0,
    "precision": 0,
    "outputs": 0,
    "allocator": 0,
    "neurons": 1,
    "layers": 2,
    "attention": 3,
    "models": 4,
    ROOT: 4,
    "losses": 5,
    "metrics": 5,
    "data": 5,
    "viz": 5,
    "analysis": 5,
    "profile": 5,
    "config": 6,
    "engine": 7,
    "inference": 8,
    "experiments": 9,
    "cli": 10,
    "__main__": 10,
}


def _unit(path: Path) -> str:
    """The layer unit of a source file: its top-level subpackage or module (``ROOT`` for
    the package's own ``__init__.py``)."""
    rel = path.relative_to(SRC)
    if rel == Path("__init__.py"):
        return ROOT
    return rel.parts[0].removesuffix(".py")


def _module_of(path: Path) -> list[str]:
    """Dotted package of ``path`` as parts, for resolving relative imports."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1]  # the package the module lives in (an __init__ is its own package)


def _imported_units(path: Path) -> list[tuple[int, str]]:
    """``(line, unit)`` for every import of a package module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[list[str]] = []
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _module_of(path)[: len(_module_of(path)) - (node.level - 1)]
                module = base + (node.module.split(".") if node.module else [])
            else:
                module = node.module.split(".") if node.module else []
            if module == [PACKAGE]:  # from medspikeformer import x: a submodule or the root
                targets = [[PACKAGE, alias.name] for alias in node.names]
            else:
                targets = [module]
        for parts in targets:
            if not parts or parts[0] != PACKAGE:
                continue
            if len(parts) == 1:
                found.append((node.lineno, ROOT))
                continue
            name = parts[1]
            is_sub = (SRC / name).is_dir() or (SRC / f"{name}.py").is_file()
            found.append((node.lineno, name if is_sub else ROOT))
    return found


def _edges() -> dict[str, dict[str, list[str]]]:
    """unit → imported unit → ["file:line", ...] (imports within one unit left out)."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(SRC.rglob("*.py")):
        src = _unit(path)
        for line, dst in _imported_units(path):
            if dst != src:
                edges[src][dst].append(f"{path.relative_to(REPO)}:{line}")
    return edges


def test_every_unit_has_a_rank() -> None:
    units = {_unit(p) for p in SRC.rglob("*.py")}
    assert sorted(units - set(RANKS)) == [], "place the new subpackage in RANKS (and the docs)"


def test_no_import_of_a_higher_layer() -> None:
    bad = [
        f"{where}: {src} (rank {RANKS[src]}) imports {dst} (rank {RANKS[dst]})"
        for src, targets in _edges().items()
        for dst, places in targets.items()
        if RANKS[dst] > RANKS[src]
        for where in places
    ]
    assert bad == [], "\n".join(bad)


def test_no_import_cycle_between_subpackages() -> None:
    edges = _edges()
    graph = {src: sorted(targets) for src, targets in edges.items()}
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                via = edges[node][nxt][0]
                cycles.append(" -> ".join(cycle) + f" (closing import at {via})")
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "\n".join(cycles)


def test_the_scan_sees_imports() -> None:
    """Guard against a scan that silently finds nothing: known edges are present."""
    edges = _edges()
    assert "attention" in edges["models"] and "neurons" in edges["layers"]
    assert "data" in edges["config"]  # a function-level import (config/checks.py)
    assert "layers" in edges["attention"] and "models" not in edges["attention"]


def test_no_private_name_imported_from_another_module() -> None:
    """``from medspikeformer.x import _helper`` couples a module to another's internals: a helper
    used elsewhere gets a public name in the module that owns it."""
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
                bad += [
                    f"{path.relative_to(REPO)}:{node.lineno}: {alias.name} from {node.module}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert bad == [], "\n".join(bad)
