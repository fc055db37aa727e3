"""Helpers shared by the reliability tests (issue 6).

``run_cli`` runs the real command line in a subprocess (``python -m medspikeformer ...``), so the
exit code and stderr are exactly what a user sees; ``assert_user_error`` checks the contract of
``docs/development.md``: a non-zero exit code, one ``error: ...`` line that names the file and the
problem, and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tiny_models import TINY_MSF, TINY_UNET

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    """Exit code and captured output of one command-line run."""

    returncode: int
    stdout: str
    stderr: str


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: one thread, the checkout's ``src`` first on the path."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env["PYTHONHASHSEED"] = "0"
    env.update(extra)
    return env


def run_cli(
    args: list[str], cwd: Path | None = None, timeout: float = 300, **env: str
) -> CliResult:
    """Run ``python -m medspikeformer ARGS`` and capture its exit code, stdout and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "medspikeformer", *map(str, args)],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def error_lines(stderr: str) -> list[str]:
    """The ``error: ...`` lines of a command's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_user_error(result: CliResult, *needles: str, code: int | None = 2) -> str:
    """Assert the user-error contract and return the error line.

    A non-zero exit code (``code`` exactly when given), exactly one ``error:`` line containing every
    string in ``needles`` (case-insensitive), and no Python traceback anywhere in the output.
    """
    out = result.stdout + result.stderr
    assert "Traceback (most recent call last)" not in out, out
    assert result.returncode != 0, out
    if code is not None:
        assert result.returncode == code, (result.returncode, out)
    lines = error_lines(result.stderr)
    assert len(lines) == 1, f"expected one 'error:' line, got {lines!r}\n{out}"
    line = lines[0]
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


#: Tiny model options per registry name (fast on one CPU thread, 32×32 inputs).
TINY_MODEL: dict[str, dict[str, int]] = {
    "medspikeformer": TINY_MSF,
    "unet": {**TINY_UNET, "num_res_units": 0},  # no residual units: the cheapest U-Net
}


def tiny_model(name: str = "medspikeformer", *, wider: bool = False):
    """A tiny registered model; ``wider`` doubles its width (same name, other config)."""
    from medspikeformer import create_model

    options = dict(TINY_MODEL.get(name, {}))
    if wider:
        options["base_channels"] = 2 * options.get("base_channels", 4)
    return create_model(name, **options)


def tiny_checkpoint(root: Path) -> Path:
    """``root/tiny.pt``: a saved tiny MedSpikeFormer checkpoint (synthetic data, 32², RGB)."""
    from medspikeformer.engine.checkpoint import build_payload, save_checkpoint

    return save_checkpoint(
        root / "tiny.pt",
        build_payload(
            tiny_model(),
            train_config={"data": {"dataset": "synthetic", "size": 32, "in_channels": 3}},
        ),
    )


def run_main(args: list[object], capsys: object) -> CliResult:
    """Run ``medspikeformer.cli.main(ARGS)`` in this process and capture what it printed.

    Same contract as the subprocess form (exit code, stderr), cheaper: an exception that escaped
    ``main`` would propagate and fail the calling test, exactly as a traceback would.
    """
    from medspikeformer.cli import main

    capsys.readouterr()  # type: ignore[attr-defined]
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()  # type: ignore[attr-defined]
    return CliResult(int(code), captured.out, captured.err)


def run_cli_with_file_size_limit(args: list[object], max_bytes: int, **env: str) -> CliResult:
    """``run_cli`` with writes beyond ``max_bytes`` per file failing (``RLIMIT_FSIZE``; SIGXFSZ
    ignored, so ``write`` returns ``EFBIG``): a disk that fills up while an output is written,
    for any user and without mounting anything."""
    import resource
    import signal

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    proc = subprocess.run(
        [sys.executable, "-m", "medspikeformer", *map(str, args)],
        env=cli_env(PYTHONDONTWRITEBYTECODE="1", **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=limit,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_cli_as_nobody(args: list[object], cwd: Path, **env: str) -> CliResult:
    """``run_cli`` as user ``nobody`` (uid 65534), for whom a read-only folder really is read-only
    (the tests run as root, who writes anywhere). Callers skip when not root."""

    def drop() -> None:
        os.setgid(65534)
        os.setuid(65534)

    proc = subprocess.run(
        [sys.executable, "-m", "medspikeformer", *map(str, args)],
        cwd=cwd,
        env=cli_env(
            HOME=str(cwd), XDG_CACHE_HOME=str(cwd / ".cache"), MPLCONFIGDIR=str(cwd), **env
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=drop,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def folder_dataset(root: Path, n: int = 2) -> Path:
    """A generic image/mask folder of ``n`` 32² pairs (random RGB images, one square each)."""
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            root / "images" / f"c{i}.png"
        )
        m = np.zeros((32, 32), np.uint8)
        m[4:12, 4:12] = 255
        Image.fromarray(m).save(root / "masks" / f"c{i}.png")
    return root
