"""An offline install for a GPU node that has its own CUDA torch and no network.

``download`` (``make wheelhouse``, where the package index is reachable) resolves the runtime
dependencies of pyproject.toml for a named Python and platform (default CPython 3.12, manylinux
x86-64) and fetches the wheels of every one of them **except torch and what only torch needs**
(triton, the nvidia-* libraries, sympy, …: the node's torch brings its own) into ``wheelhouse/``.

``install`` (run by benchmarks/gpu_check.sh on the node) installs from that folder, with
``pip --no-index --no-deps --target DIR``, the wheels whose project the node's Python does not
already hold (it may have numpy, scipy, OpenCV, tifffile, …), so nothing beside the node's torch
is replaced; ``DIR`` then goes first on ``PYTHONPATH``. Usage::

    python benchmarks/wheelhouse.py download --dest wheelhouse [--python-version 3.12]
    python benchmarks/wheelhouse.py install --wheelhouse wheelhouse --target build/gpu-deps
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pip's own copy of tomli
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
#: Provided by the node: never fetched, never installed.
NODE_PROVIDED = ("torch",)
#: glibc 2.28 and older (pip takes each tag as given: the older ones are named too).
DEFAULT_PLATFORMS = "manylinux_2_28_x86_64,manylinux_2_17_x86_64,manylinux2014_x86_64"


def canonical(name: str) -> str:
    """A project name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The ``[project] dependencies`` of ``pyproject`` without the node-provided ones."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [
        d
        for d in deps
        if canonical(re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0]) not in NODE_PROVIDED
    ]


def keep_without_torch(report: dict, roots: list[str]) -> dict[str, str]:
    """``{name: version}`` of the resolved projects reachable from ``roots`` without passing
    through a node-provided project (pip's ``--report`` of the resolution)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a bare Python: pip's own copy
        from pip._vendor.packaging.requirements import Requirement

    items = {canonical(i["metadata"]["name"]): i for i in report["install"]}
    env = report.get("environment", {})
    keep: dict[str, str] = {}
    todo = [canonical(Requirement(r).name) for r in roots]
    while todo:
        name = todo.pop()
        if name in keep or name in NODE_PROVIDED or name not in items:
            continue
        meta = items[name]["metadata"]
        keep[name] = meta["version"]
        for spec in meta.get("requires_dist") or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                todo.append(canonical(req.name))
    return keep


def pip_target_args(args: argparse.Namespace) -> list[str]:
    """pip's options that pick wheels for another interpreter and platform."""
    version = args.python_version.replace(".", "")
    return [
        "--only-binary=:all:",
        "--python-version",
        args.python_version,
        "--implementation",
        "cp",
        "--abi",
        f"cp{version}",
        *[flag for tag in args.platform.split(",") for flag in ("--platform", tag)],
    ]


def download(args: argparse.Namespace) -> int:
    roots = runtime_requirements()
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        # A dry run resolves (reading metadata only, no torch download) for the named platform.
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed"]
        cmd += [*pip_target_args(args), "--target", str(Path(tmp) / "t")]
        cmd += ["--report", str(report_path), *roots]
        subprocess.run(cmd, check=True)
        report = json.loads(report_path.read_text())
    keep = keep_without_torch(report, roots)
    pins = [f"{name}=={version}" for name, version in sorted(keep.items())]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(dest)]
    subprocess.run([*cmd, *pip_target_args(args), *pins], check=True)
    (dest / "requirements.txt").write_text("\n".join(pins) + "\n")
    print(f"wheelhouse: {len(pins)} wheels for CPython {args.python_version} ({args.platform})")
    print(f"wheelhouse: wrote {dest} (torch excluded: the GPU node brings its own)")
    return 0


def installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def install(args: argparse.Namespace) -> int:
    house = Path(args.wheelhouse)
    pins = (house / "requirements.txt").read_text().split() if house.is_dir() else []
    if not pins:
        print(f"wheelhouse: {house}/requirements.txt not found: run `make wheelhouse` first")
        return 2
    missing = [p for p in pins if not installed(p.split("==")[0])]
    if not missing:
        print("wheelhouse: every dependency is already installed here")
        return 0
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    cmd += ["--find-links", str(house), "--target", args.target, *missing]
    rc = subprocess.run(cmd).returncode
    print(f"wheelhouse: installed {len(missing)} into {args.target}: {' '.join(missing)}")
    return rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="fetch the wheels (needs the package index)")
    d.add_argument("--dest", default="wheelhouse")
    d.add_argument("--python-version", default="3.12")
    d.add_argument("--platform", default=DEFAULT_PLATFORMS, help="comma-separated tags")
    i = sub.add_parser("install", help="install the missing ones offline into a target folder")
    i.add_argument("--wheelhouse", default="wheelhouse")
    i.add_argument("--target", required=True)
    args = p.parse_args(argv)
    return download(args) if args.command == "download" else install(args)


if __name__ == "__main__":
    sys.exit(main())
