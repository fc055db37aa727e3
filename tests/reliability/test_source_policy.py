"""Source-tree policy: every ``torch.load`` passes ``weights_only=True`` (issue 6, part 2).

The check parses every Python file of the checkout (``src``, ``tests``, ``benchmarks``) with
``ast`` — so calls split over several lines are seen — and also scans the Markdown docs textually,
because users copy snippets from them. The package itself must not unpickle anything by other
routes either (``pickle.load``, ``np.load(allow_pickle=True)``, ``torch.jit.load``).

A test may deliberately load unsafely only to prove that a crafted file is hostile; such a line
carries the comment ``# unsafe-load-ok`` and is accepted only under ``tests/reliability``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .helpers import REPO

PY_ROOTS = ("src", "tests", "benchmarks")
ALLOW_MARK = "# unsafe-load-ok"
ALLOW_DIR = REPO / "tests" / "reliability"


def _dotted(node: ast.AST) -> str:
    """``torch.serialization.load`` → "torch.serialization.load" (best effort, '' otherwise)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw_is_true(call: ast.Call, name: str) -> bool:
    return any(
        kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value is True
        for kw in call.keywords
    )


def unsafe_calls(source: str, *, package_code: bool) -> list[tuple[int, str]]:
    """(line, description) of every load call that could unpickle arbitrary objects.

    ``torch.load`` / ``torch.serialization.load`` without ``weights_only=True`` anywhere; in
    package code also ``pickle.load(s)``, ``pickle.Unpickler``, ``np.load(allow_pickle=True)``,
    ``torch.jit.load``, ``dill``/``joblib``/``cloudpickle`` loads.
    """
    tree = ast.parse(source)
    torch_aliases = {"torch"}
    load_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "torch" and a.asname:
                    torch_aliases.add(a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            for a in node.names:
                if a.name == "load":
                    load_aliases.add(a.asname or a.name)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        is_torch_load = (head in torch_aliases and rest in ("load", "serialization.load")) or (
            name in load_aliases
        )
        if is_torch_load and not _kw_is_true(node, "weights_only"):
            found.append((node.lineno, f"{name}(...) without weights_only=True"))
        if not package_code:
            continue
        if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "torch.jit.load") or (
            head in ("dill", "joblib", "cloudpickle") and rest.startswith("load")
        ):
            found.append((node.lineno, f"{name}(...) can run code from the file"))
        if rest == "load" and head in ("np", "numpy") and _kw_is_true(node, "allow_pickle"):
            found.append((node.lineno, f"{name}(..., allow_pickle=True)"))
    return found


def _python_files() -> list[Path]:
    files: list[Path] = []
    for root in PY_ROOTS:
        base = REPO / root
        if base.is_dir():
            files += [p for p in base.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def test_checker_detects_unsafe_calls() -> None:
    """The scanner itself must flag what it is meant to flag (else the policy test proves nothing)."""
    bad = (
        "import torch\nimport torch as T\nfrom torch import load as L\nimport pickle\n"
        "torch.load(p)\n"
        "torch.load(\n    p,\n    map_location='cpu',\n)\n"
        "T.load(p, weights_only=False)\n"
        "L(p)\n"
        "torch.serialization.load(p)\n"
        "pickle.loads(b)\n"
        "import numpy as np\nnp.load(p, allow_pickle=True)\n"
    )
    lines = [line for line, _ in unsafe_calls(bad, package_code=True)]
    assert sorted(lines) == [5, 6, 10, 11, 12, 13, 15]
    good = "import torch\ntorch.load(p, map_location='cpu', weights_only=True)\n"
    assert unsafe_calls(good, package_code=True) == []


def test_no_torch_load_without_weights_only_in_source_tree() -> None:
    """Every ``torch.load`` in src/, tests/ and benchmarks/ passes ``weights_only=True``."""
    files = _python_files()
    assert any(p.name == "checkpoint.py" for p in files), "engine/checkpoint.py not found"
    offenders: list[str] = []
    loads_seen = 0
    for path in files:
        source = path.read_text(encoding="utf-8")
        loads_seen += source.count("torch.load(")
        package_code = REPO / "src" in path.parents
        lines = source.splitlines()
        for lineno, what in unsafe_calls(source, package_code=package_code):
            allowed = ALLOW_DIR in path.parents and ALLOW_MARK in lines[lineno - 1]
            if not allowed:
                offenders.append(f"{path.relative_to(REPO)}:{lineno}: {what}")
    assert loads_seen > 0, "no torch.load call found at all: the scan looks at the wrong tree"
    assert not offenders, "unsafe loads:\n" + "\n".join(offenders)


def _markdown_torch_loads(text: str) -> list[str]:
    """The argument lists of ``torch.load(`` calls in text (parentheses balanced)."""
    calls = []
    for m in re.finditer(r"torch\.load\(", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        calls.append(text[m.end() : i - 1])
    return calls


def test_docs_never_show_an_unsafe_torch_load() -> None:
    """Snippets in README/docs that call ``torch.load`` also pass ``weights_only=True``."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    offenders = [
        f"{p.relative_to(REPO)}: torch.load({args})"
        for p in docs
        if p.is_file()
        for args in _markdown_torch_loads(p.read_text(encoding="utf-8"))
        if not re.search(r"weights_only\s*=\s*True", args)
    ]
    assert not offenders, "\n".join(offenders)
