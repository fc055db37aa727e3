"""The built wheel: it ships the configs and recipes, and an installed wheel runs ``demo``.

A source checkout resolves ``--config kvasir`` through the package data too, but only a real
wheel proves that the YAML files are *in* the distribution (an editable install or
``PYTHONPATH=src`` would find them in the tree either way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP = (sys.executable, "-m", "pip")
SHIPPED = sorted(
    p.relative_to(ROOT / "src").as_posix()
    for p in (ROOT / "src" / "medspikeformer" / "configs").rglob("*.yaml")
)


def _site_packages() -> Path:
    """This interpreter's site-packages (torch, numpy … for the fresh venv)."""
    import torch

    return Path(torch.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the tree (nothing is written into the checkout)."""
    src = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = dist.glob("medspikeformer-*.whl")
    return built


def test_shipped_config_set_is_not_empty() -> None:
    names = {Path(p).stem for p in SHIPPED}
    assert {"kvasir", "synthetic", "demo", "cpu-quick"} <= names


def test_wheel_contains_every_config_and_recipe(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = [p for p in SHIPPED if p not in names]
    assert not missing, f"{wheel.name} lacks {missing}"


def test_installed_wheel_runs_demo(wheel: Path, tmp_path: Path) -> None:
    """A fresh venv holding only the wheel (dependencies borrowed from this interpreter's
    site-packages through a ``.pth`` line, whose own ``.pth`` files — the editable install of a
    checkout — are not run) trains and evaluates the demo for one epoch outside any checkout."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # No PYTHONPATH (a checkout's src/ on it would make pip think the package is installed).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    subprocess.run(
        [*PIP, "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    # After the install: pip must not see (nor touch) the borrowed environment's packages.
    Path(purelib, "borrowed_deps.pth").write_text(f"{_site_packages()}\n")
    assert (venv / "bin" / "medspikeformer").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [str(py), "-c", "import medspikeformer; print(medspikeformer.__file__)"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert where.startswith(purelib), f"imported {where}, not the installed wheel"
    out = subprocess.run(
        [str(venv / "bin" / "medspikeformer"), "demo", "--epochs", "1", "--out", "run"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (work / "run" / "best.pt").is_file()
    assert (work / "run" / "test" / "summary.json").is_file()
