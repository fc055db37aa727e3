"""Second hostile pass over issue 27's surfaces: untrusted checkpoints and configs, writers and
output paths, masks, volumes, command-line arguments, interrupted runs and data folders.

Every case drives the real command line (``python -m medspikeformer ...`` in a child process,
the worktree's ``src`` first on the path) with tiny models and generated files, and is one row of
the table: case, surface, expected, observed, class. The classes:

* ``ok`` — what the row expects (a result, or exit 2 with one ``error:`` line naming the problem);
* ``traceback`` — a Python traceback, or an error that is not one line;
* ``silent wrong`` — exit 0 with a wrong or unrequested result;
* ``lost file`` — an input or an earlier result overwritten or removed, or a temporary file left;
* ``security`` — a file written where an input file (not the user) said;
* ``hang`` — still running after the row's time limit.

Run::

    PYTHONPATH=src python benchmarks/hostile_pass.py [--out table.md] [-k SUBSTRING]

It prints the table (markdown) and the counts by class; the exit status is 1 when a row is not
``ok``. Generated files live in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TINY = {"base_channels": 4, "num_units": 2, "timesteps": 2, "head_dim": 4}
SPAWN = False  # --spawn: a fresh interpreter per command instead of a fork
CLASSES = ("ok", "traceback", "silent wrong", "lost file", "security", "hang")


@dataclass
class Run:
    """What one command did: exit status, output, whether it ran past its limit."""

    rc: int
    out: str
    err: str
    hung: bool = False

    @property
    def text(self) -> str:
        return self.out + self.err

    def errors(self) -> list[str]:
        """The ``error:`` lines, argparse's usage errors (``medspikeformer CMD: error: …``) too."""
        return [
            ln
            for ln in self.err.splitlines()
            if ln.startswith("error:") or (ln.startswith("medspikeformer") and ": error: " in ln)
        ]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    e["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), e.get("PYTHONPATH", "")])
    return e


def _child(argv: list[str], cwd: Path | None, out: int, err: int) -> None:
    """In a forked child: the program's own start (SIGTERM unwinds) and ``main``, its output to
    the given files; never returns."""
    code = 1
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        if cwd is not None:
            os.chdir(cwd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from medspikeformer.cli import exit_on_sigterm, main

        exit_on_sigterm()
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def start(args: tuple[object, ...], cwd: Path | None = None) -> tuple[int, Path, Path]:
    """``medspikeformer ARGS`` in a child: a fresh interpreter (``SPAWN``) or, by default, a fork
    of this process, which imported the package once (the same ``main``, far cheaper per row)."""
    fd_out, out = tempfile.mkstemp(prefix="hp-out-")
    fd_err, err = tempfile.mkstemp(prefix="hp-err-")
    argv = [str(a) for a in args]
    if SPAWN:
        p = subprocess.Popen(
            [sys.executable, "-m", "medspikeformer", *argv],
            env=env(),
            cwd=cwd,
            stdout=fd_out,
            stderr=fd_err,
        )
        os.close(fd_out)
        os.close(fd_err)
        return p.pid, Path(out), Path(err)
    pid = os.fork()
    if pid == 0:
        _child(argv, cwd, fd_out, fd_err)
    os.close(fd_out)
    os.close(fd_err)
    return pid, Path(out), Path(err)


def finish(pid: int, out: Path, err: Path, timeout: float, status: int | None = None) -> Run:
    """Wait for the child ``pid`` (killed after ``timeout`` seconds; ``status`` when it was
    already reaped) and read what it printed."""
    deadline = time.monotonic() + timeout
    while status is None and time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        time.sleep(0.05)
    hung = status is None
    if status is None:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    run = Run(rc, _s(out.read_bytes()), _s(err.read_bytes()), hung=hung)
    out.unlink()
    err.unlink()
    return run


def cli(*args: object, timeout: float = 180, cwd: Path | None = None) -> Run:
    """``medspikeformer ARGS``: exit status and output as a user sees them."""
    return finish(*start(args, cwd), timeout)


def evaluate_args(ckpt: Path, data: object, out: object, cache: object = "off") -> list[object]:
    """``evaluate CKPT`` over every image of the folder dataset ``data``, into ``out``."""
    return [
        "evaluate", ckpt, "--dataset", "folder", "--data-root", data, "--split", "all",
        "--out", out, "--cache-dir", cache, "--no-progress",
    ]  # fmt: skip


def cli_signalled(
    args: list[object], sig: int, when: Callable[[], bool], limit: float = 120
) -> Run:
    """Start ``medspikeformer ARGS``; send ``sig`` once ``when()`` holds; wait for the end."""
    pid, out, err = start(tuple(args))
    t0 = time.monotonic()
    status = None
    while time.monotonic() - t0 < limit:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:  # finished before the point was reached: nothing to signal
            status = st
            break
        if when():
            os.kill(pid, sig)
            break
        time.sleep(0.05)
    return finish(pid, out, err, 60, status)


def _s(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode("utf-8", "backslashreplace")


def _short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def refused(r: Run, *needles: str, code: int = 2) -> tuple[str, str]:
    """A row expecting a refusal: exit ``code``, one error line holding every needle."""
    if r.hung:
        return "hang", "still running"
    if "Traceback (most recent call last)" in r.text:
        last = [ln for ln in r.err.splitlines() if ln.strip()][-1:] or [""]
        return "traceback", _short(last[0])
    errs = r.errors()
    if r.rc == 0:
        return "silent wrong", "exit 0: " + _short(
            r.err.strip().splitlines()[-1] if r.err.strip() else r.out
        )
    if len(errs) != 1 or r.rc != code:
        return "traceback", f"exit {r.rc}, {len(errs)} error lines: {_short(r.err)}"
    missing = [n for n in needles if n.lower() not in errs[0].lower()]
    if missing:
        return "silent wrong", f"line lacks {missing}: {_short(errs[0])}"
    return "ok", _short(errs[0])


def accepted(r: Run, check: Callable[[], str | None] | None = None) -> tuple[str, str]:
    """A row expecting success: exit 0, no traceback, then ``check()`` (None = fine)."""
    if r.hung:
        return "hang", "still running"
    if "Traceback (most recent call last)" in r.text:
        return "traceback", _short(r.err.strip().splitlines()[-1])
    if r.rc != 0:
        return "silent wrong", f"exit {r.rc}: {_short(r.err)}"
    problem = check() if check else None
    if problem:
        return "silent wrong", problem
    return "ok", "exit 0" + (": " + _short(r.err) if r.err.strip() else "")


def refused_or_accepted(r: Run, check: Callable[[], str | None] | None = None) -> tuple[str, str]:
    """Either a one-line refusal or a correct result is fine."""
    if r.rc == 0:
        return accepted(r, check)
    return refused(r)


# --------------------------------------------------------------------------------------------
# the workspace: a tiny checkpoint, a folder dataset, a NIfTI volume, a trained tiny run


class Workspace:
    def __init__(self, root: Path) -> None:
        import torch

        from medspikeformer import create_model
        from medspikeformer.engine.checkpoint import build_payload, save_checkpoint

        self.root = root
        torch.manual_seed(0)
        model = create_model("medspikeformer", **TINY)
        self.ckpt = save_checkpoint(
            root / "ckpt" / "tiny.pt",
            build_payload(
                model,
                train_config={"data": {"dataset": "synthetic", "size": 32, "in_channels": 3}},
            ),
        )
        self.data = self.folder(root / "ds")
        self.image = self.data / "images" / "c0.png"
        self._n = 0

    def new(self, name: str = "t") -> Path:
        self._n += 1
        p = self.root / f"{self._n:03d}-{name}"
        p.mkdir(parents=True)
        return p

    @staticmethod
    def folder(root: Path, n: int = 4, size: int = 32) -> Path:
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng(i)
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
                root / "images" / f"c{i}.png"
            )
            m = np.zeros((size, size), np.uint8)
            m[4:12, 4:12] = 255
            Image.fromarray(m).save(root / "masks" / f"c{i}.png")
        return root

    def edited_ckpt(self, name: str, edit: Callable[[dict], None]) -> Path:
        import torch

        data = torch.load(self.ckpt, map_location="cpu", weights_only=True)
        edit(data)
        out = self.new("ck") / name
        torch.save(data, out)
        return out

    def config(self, where: Path, data_root: Path | None = None, **over: object) -> Path:
        import yaml

        cfg: dict = {
            "model": {"name": "medspikeformer", **TINY},
            "data": {
                "dataset": "folder",
                "root": str(data_root or self.data),
                "size": 32,
                "split_spec": "50/25/25",
                "augment": "none",
                "cache_dir": False,
                "num_workers": 0,
            },
            "train": {"epochs": 1, "batch_size": 2, "progress": False},
            "teacher": {"mode": "none"},
            "out": str(where / "run"),
        }
        for key, value in over.items():
            section, _, field = key.partition("__")
            cfg.setdefault(section, {})[field] = value
        path = where / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path


def nifti(path: Path, array: np.ndarray, zooms: tuple[float, ...] | None = None) -> Path:
    import nibabel as nib

    img = nib.Nifti1Image(array, np.eye(4))
    if zooms is not None:
        img.header.set_zooms(zooms)
    nib.save(img, str(path))
    return path


def tmp_files(root: Path) -> list[str]:
    """Temporary files left behind (outputs' ``.NAME.RANDOM.tmp``, the data cache's ``.tmp-*``)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name.endswith(".tmp") or p.name.startswith(".tmp-")
    )


# --------------------------------------------------------------------------------------------
# the cases

CASES: list[tuple[str, str, str, Callable[[Workspace], tuple[str, str]]]] = []


def case(name: str, surface: str, expected: str):
    def register(fn: Callable[[Workspace], tuple[str, str]]):
        CASES.append((name, surface, expected, fn))
        return fn

    return register


def _model_config_case(name: str, value_edit: dict, needle: str = "tiny") -> None:
    @case(f"checkpoint model_config {name}", "checkpoint", "one line, nothing built")
    def run(ws: Workspace) -> tuple[str, str]:
        ck = ws.edited_ckpt("bad.pt", lambda d: d["model_config"].update(value_edit))
        out = ws.new("pred")
        return refused(cli("predict", ck, ws.image, "--out", out, "--no-progress"), "bad.pt")


_model_config_case("base_channels '4' (text)", {"base_channels": "4"})
_model_config_case("base_channels true (bool)", {"base_channels": True})
_model_config_case("timesteps 0", {"timesteps": 0})
_model_config_case("timesteps -3", {"timesteps": -3})
_model_config_case("timesteps 2.5", {"timesteps": 2.5})
_model_config_case("num_units 10**30", {"num_units": 10**30})
_model_config_case("head_dim 0", {"head_dim": 0})
_model_config_case("unknown key with zero-width space", {"timesteps\u200b": 2})
_model_config_case("nested dict 300 deep", {"extra": json.loads("[" * 300 + "]" * 300)})


@case("checkpoint model name with ESC/newline", "checkpoint", "one line, escaped")
def _(ws: Workspace) -> tuple[str, str]:
    ck = ws.edited_ckpt("bad.pt", lambda d: d.update(model_name="\x1b[31mevil\nname"))
    r = cli("predict", ck, ws.image, "--out", ws.new(), "--no-progress")
    cls, obs = refused(r, "bad.pt")
    if cls == "ok" and "\x1b" in r.err:
        return "security", "raw ESC printed"
    return cls, obs


@case("checkpoint model_config is a list", "checkpoint", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    ck = ws.edited_ckpt("bad.pt", lambda d: d.update(model_config=[1, 2]))
    return refused(cli("predict", ck, ws.image, "--out", ws.new(), "--no-progress"), "bad.pt")


def _train_config_case(name: str, data_edit: dict) -> None:
    @case(f"checkpoint train_config.data {name} (predict)", "checkpoint", "one line, no work")
    def run(ws: Workspace) -> tuple[str, str]:
        ck = ws.edited_ckpt("bad.pt", lambda d: d["train_config"]["data"].update(data_edit))
        r = cli("predict", ck, ws.image, "--out", ws.new(), "--no-progress", timeout=120)
        return refused(r, "bad.pt")


_train_config_case("size 10**6", {"size": 10**6})
_train_config_case("size -32", {"size": -32})
_train_config_case("size 'big'", {"size": "big"})
_train_config_case("size [32, nan]", {"size": [32, float("nan")]})


@case("unicode checkpoint and image names (é, emoji, RTL)", "checkpoint", "works")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    ck = d / "mödel-🧠-\u202e.pt"
    ck.write_bytes(ws.ckpt.read_bytes())
    img = d / "ímage-😀.png"
    img.write_bytes(ws.image.read_bytes())
    out = d / "out"
    r = cli("predict", ck, img, "--out", out, "--no-progress")
    return accepted(r, lambda: None if (out / "ímage-😀_mask.png").exists() else "no mask")


@case(
    "checkpoint train_config.data in_channels 7 (predict)",
    "checkpoint",
    "works: the model's channels decide",
)
def _(ws: Workspace) -> tuple[str, str]:
    ck = ws.edited_ckpt("odd.pt", lambda d: d["train_config"]["data"].update(in_channels=7))
    out = ws.new()
    r = cli("predict", ck, ws.image, "--out", out, "--no-progress")
    return accepted(r, lambda: None if (out / "c0_mask.png").exists() else "no mask")


@case("checkpoint path is a symlink to a folder", "checkpoint", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    (d / "ck.pt").symlink_to(d)
    return refused(cli("export", d / "ck.pt", "--safetensors", d / "x.st"), "ck.pt")


def _yaml_case(name: str, text: str, needle: str = "c.yaml") -> None:
    what = "the file" if needle == "c.yaml" else f"'{needle}'"

    @case(f"config {name}", "config", f"one line naming {what}")
    def run(ws: Workspace) -> tuple[str, str]:
        d = ws.new()
        (d / "c.yaml").write_text(text, encoding="utf-8")
        return refused(cli("train", "--config", d / "c.yaml", "--out", d / "run"), needle)


_yaml_case("epochs: .inf", "train:\n  epochs: .inf\n", "train.epochs")
_yaml_case("epochs: 1e400", "train:\n  epochs: 1e400\n", "train.epochs")
_yaml_case("batch_size: 'eight' (text)", "train:\n  batch_size: eight\n", "train.batch_size")
_yaml_case("data.size: [32, 32, 32]", "data:\n  size: [32, 32, 32]\n", "size")
_yaml_case("model: null", "model: null\n", "model")
_yaml_case("top level a list", "- 1\n- 2\n")
_yaml_case("nesting 2000 deep", "x: " + "[" * 2000 + "]" * 2000 + "\n")
_yaml_case("unicode unknown key 'épochs'", "train:\n  épochs: 3\n", "épochs")
_yaml_case("lr: .nan", "optim:\n  lr: .nan\n", "optim.lr")
_yaml_case("seed: 2**70", "train:\n  seed: 1180591620717411303424\n", "seed")
_yaml_case("timesteps 1000 (over the bound)", "model:\n  timesteps: 1000\n", "timesteps")


@case("config path is a folder", "config", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    return refused(cli("train", "--config", d, "--out", d / "run"), str(d.name))


@case("config file not UTF-8 (random bytes)", "config", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    (d / "c.yaml").write_bytes(bytes(range(128, 256)) * 4)
    return refused(cli("train", "--config", d / "c.yaml", "--out", d / "run"), "c.yaml")


@case("--set without '='", "config", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    return refused(cli("train", "--config", ws.config(d), "--set", "train.epochs"), "train.epochs")


@case("--set model.timesteps=100000", "config", "one line (bound)")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    return refused(
        cli("train", "--config", ws.config(d), "--set", "model.timesteps=100000"), "timesteps"
    )


# ---- writers and output paths


def _predict_into_inputs(ws: Workspace, spelling: Callable[[Path], str]) -> tuple[str, str]:
    d = ws.new()
    imgs = d / "imgs"
    imgs.mkdir()
    (imgs / "a.png").write_bytes(ws.image.read_bytes())
    (imgs / "a_mask.png").write_bytes(ws.image.read_bytes())  # an input named like an output
    before = {p.name: p.read_bytes() for p in imgs.iterdir()}
    r = cli("predict", ws.ckpt, "imgs", "--out", spelling(imgs), "--no-progress", cwd=d)
    changed = [n for n, b in before.items() if (imgs / n).read_bytes() != b]
    if changed:
        return "lost file", f"overwrote {changed}"
    return refused_or_accepted(r)


@case("predict --out = the input folder", "writer", "no input overwritten")
def _(ws: Workspace) -> tuple[str, str]:
    return _predict_into_inputs(ws, lambda p: "imgs")


@case("predict --out = ./imgs/../imgs", "writer", "no input overwritten")
def _(ws: Workspace) -> tuple[str, str]:
    return _predict_into_inputs(ws, lambda p: "./imgs/../imgs")


@case("predict --out = a symlink to the input folder", "writer", "no input overwritten")
def _(ws: Workspace) -> tuple[str, str]:
    def link(p: Path) -> str:
        (p.parent / "lnk").symlink_to(p)
        return "lnk"

    return _predict_into_inputs(ws, link)


@case("predict: output name is a hard link to the input", "writer", "no input overwritten")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    img = d / "a.png"
    img.write_bytes(ws.image.read_bytes())
    out = d / "out"
    out.mkdir()
    os.link(img, out / "a_mask.png")
    before = img.read_bytes()
    r = cli("predict", ws.ckpt, img, "--out", out, "--no-progress")
    if img.read_bytes() != before:
        return "lost file", "input image replaced"
    return refused_or_accepted(r)


@case("predict: a symlink planted at the mask's name", "writer", "link not followed")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    victim = d / "victim.txt"
    victim.write_text("keep")
    out = d / "out"
    out.mkdir()
    (out / "c0_mask.png").symlink_to(victim)
    r = cli("predict", ws.ckpt, ws.image, "--out", out, "--no-progress")
    if victim.read_text() != "keep":
        return "security", "wrote through the link"
    return refused(r, "c0_mask.png", "link")


@case("predict --out is an existing file", "writer", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    (d / "f").write_text("x")
    r = cli("predict", ws.ckpt, ws.image, "--out", d / "f", "--no-progress")
    cls, obs = refused(r, "f")
    return ("lost file", "file replaced") if (d / "f").read_text() != "x" else (cls, obs)


@case("predict --out '' (empty)", "writer", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    r = cli("predict", ws.ckpt, ws.image, "--out", "", "--no-progress", cwd=d)
    cls, obs = refused(r, "--out")
    if list(d.iterdir()):
        return "silent wrong", "wrote into the working folder"
    return cls, obs


@case("export --safetensors = ./ckpt/../ckpt/tiny.pt", "writer", "refused, checkpoint kept")
def _(ws: Workspace) -> tuple[str, str]:
    before = ws.ckpt.read_bytes()
    r = cli("export", ws.ckpt, "--safetensors", "ckpt/../ckpt/./tiny.pt", cwd=ws.root)
    if ws.ckpt.read_bytes() != before:
        return "lost file", "checkpoint replaced"
    return refused(r, "input")


@case("export --onnx = a symlink to the checkpoint", "writer", "refused, checkpoint kept")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    (d / "m.onnx").symlink_to(ws.ckpt)
    before = ws.ckpt.read_bytes()
    r = cli("export", ws.ckpt, "--onnx", d / "m.onnx", "--no-verify")
    if ws.ckpt.read_bytes() != before:
        return "lost file", "checkpoint replaced"
    return refused(r, "m.onnx")


@case("export --onnx and --safetensors the same file", "writer", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    r = cli("export", ws.ckpt, "--onnx", d / "x", "--safetensors", d / "x", "--no-verify")
    return refused(r, "x")


@case("export --onnx '' (empty)", "writer", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    r = cli("export", ws.ckpt, "--onnx", "", "--no-verify", cwd=d)
    return refused(r, "onnx")


@case("export --safetensors under a regular file", "writer", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    (d / "f").write_text("x")
    return refused(cli("export", ws.ckpt, "--safetensors", d / "f" / "x.st"), "x.st")


@case("explain --out = the checkpoint via ./", "writer", "refused, checkpoint kept")
def _(ws: Workspace) -> tuple[str, str]:
    before = ws.ckpt.read_bytes()
    r = cli(
        "explain", "ckpt/tiny.pt", ws.image, "--out", "./ckpt/tiny.pt", "--no-teacher", cwd=ws.root
    )
    if ws.ckpt.read_bytes() != before:
        return "lost file", "checkpoint replaced"
    return refused(r, "input")


@case("explain --out a symlink to a victim", "writer", "link not followed")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    victim = d / "victim.txt"
    victim.write_text("keep")
    (d / "x.png").symlink_to(victim)
    r = cli("explain", ws.ckpt, ws.image, "--out", d / "x.png", "--no-teacher")
    if victim.read_text() != "keep":
        return "security", "wrote through the link"
    return refused(r, "x.png")


@case("profile --json = the --checkpoint file", "writer", "refused, checkpoint kept")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    ck = d / "c.pt"
    ck.write_bytes(ws.ckpt.read_bytes())
    before = ck.read_bytes()
    r = cli(
        "profile", "medspikeformer", "--size", "32", "--checkpoint", ck, "--json", ck, "--no-layers"
    )
    if ck.read_bytes() != before:
        return "lost file", "checkpoint replaced by the JSON report"
    return refused(r, "c.pt")


@case("data show --out = a mask via masks/../masks", "writer", "refused, mask kept")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    data = ws.folder(d / "ds", n=2)
    mask = data / "masks" / "c0.png"
    before = mask.read_bytes()
    r = cli("data", "show", "folder", "--root", "ds", "--out", "ds/masks/../masks/c0.png", cwd=d)
    if mask.read_bytes() != before:
        return "lost file", "mask replaced"
    return refused(r, "input")


@case("data show --out = a hard link to an image", "writer", "refused, image kept")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    data = ws.folder(d / "ds", n=2)
    os.link(data / "images" / "c1.png", d / "grid.png")
    before = (data / "images" / "c1.png").read_bytes()
    r = cli("data", "show", "folder", "--root", data, "--out", d / "grid.png")
    if (data / "images" / "c1.png").read_bytes() != before:
        return "lost file", "image replaced"
    return refused(r, "input")


@case("evaluate --out = the dataset's masks folder", "writer", "no mask replaced")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    data = ws.folder(d / "ds", n=2)
    before = {p.name: p.read_bytes() for p in (data / "masks").iterdir()}
    r = cli(*evaluate_args(ws.ckpt, data, data / "masks"), "--grid", "0")
    after = {p.name: p.read_bytes() for p in (data / "masks").iterdir() if p.name in before}
    if after != before:
        return "lost file", "a mask replaced"
    return refused_or_accepted(r)


@case("evaluate --out ''", "writer", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    r = cli(*evaluate_args(ws.ckpt, ws.data, ""), cwd=d)
    cls, obs = refused(r, "--out")
    if list(d.iterdir()):
        return "silent wrong", "wrote into the working folder"
    return cls, obs


@case("train --out = the dataset folder", "writer", "no dataset file replaced")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    data = ws.folder(d / "ds", n=4)
    (data / "split.json").write_text('{"mine": true}')
    (data / "config.yaml").write_text("mine: true\n")
    cfg = ws.config(d, data_root=data)
    r = cli("train", "--config", cfg, "--out", data)
    if (data / "split.json").read_text() != '{"mine": true}' or (
        data / "config.yaml"
    ).read_text() != "mine: true\n":
        return "lost file", "the folder's own split.json / config.yaml replaced"
    return refused_or_accepted(r)


def _empty_out(
    args: Callable[[Workspace, Path], list[object]],
) -> Callable[[Workspace], tuple[str, str]]:
    def run(ws: Workspace) -> tuple[str, str]:
        d = ws.new()
        r = cli(*args(ws, d), cwd=d)
        written = [p.name for p in d.iterdir() if p.name not in ("c.yaml",)]
        if written and r.rc == 0:
            return "silent wrong", f"wrote {written[:3]} into the working folder"
        return refused(r, "empty path")

    return run


case("data show --out ''", "writer", "one line")(
    _empty_out(lambda ws, d: ["data", "show", "folder", "--root", ws.data, "--out", ""])
)
case("profile --json ''", "writer", "one line")(
    _empty_out(lambda ws, d: ["profile", "unet", "--size", "32", "--no-layers", "--json", ""])
)
case("train --out ' ' (blank)", "writer", "one line")(
    _empty_out(lambda ws, d: ["train", "--config", ws.config(d), "--out", " "])
)
case("explain --out ''", "writer", "one line")(
    _empty_out(lambda ws, d: ["explain", ws.ckpt, ws.image, "--out", "", "--no-teacher"])
)


@case("evaluate a dataset with a non-UTF-8 sample id", "writer", "every report written")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    data = ws.folder(d / "ds", n=2)
    for sub in ("images", "masks"):
        os.rename(data / sub / "c0.png", os.path.join(os.fsencode(data / sub), b"c\xff0.png"))
    out = d / "ev"
    r = cli(*evaluate_args(ws.ckpt, data, out))
    want = {"per_image.csv", "summary.json", "summary.md", "qualitative.png"}
    return accepted(r, lambda: None if want <= {p.name for p in out.iterdir()} else "missing")


@case("train --out is an existing file", "writer", "one line")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    (d / "f").write_text("x")
    r = cli("train", "--config", ws.config(d), "--out", d / "f")
    if (d / "f").read_text() != "x":
        return "lost file", "replaced"
    return refused(r, "f")


# ---- masks


def _mask_case(name: str, make: Callable[[Path], None], want: str) -> None:
    """``want``: 'fg' (the square reads as foreground), 'refused' (one line)."""

    @case(f"mask {name}", "mask", {"fg": "square read as foreground", "refused": "one line"}[want])
    def run(ws: Workspace) -> tuple[str, str]:
        d = ws.new()
        data = ws.folder(d / "ds", n=3)
        for p in (data / "masks").iterdir():
            p.unlink()
        for i in range(3):
            make(data / "masks" / f"c{i}")
        r = cli("data", "check", "folder", "--root", data)
        if want == "refused":
            if "Traceback" in r.text:
                return "traceback", _short(r.err.splitlines()[-1])
            if r.rc == 1 and "c0" in r.out:
                return "ok", _short(next(ln for ln in r.out.splitlines() if "c0" in ln))
            return "silent wrong", f"exit {r.rc}: {_short(r.out[-200:])}"
        from medspikeformer.errors import DataError

        try:
            from medspikeformer.data.io import read_mask

            path = next((data / "masks").glob("c0*"))
            m = read_mask(path)
        except DataError as exc:
            return "silent wrong", f"refused: {_short(str(exc))}"
        except Exception as exc:
            return "traceback", f"{type(exc).__name__}: {_short(str(exc))}"
        if m.shape != (32, 32) or m.sum() != 64 or not m[4:12, 4:12].all():
            return "silent wrong", f"foreground {int(m.sum())} px, want 64"
        if r.rc != 0 or "Traceback" in r.text:
            return "silent wrong", f"data check exit {r.rc}: {_short(r.out[-160:])}"
        return "ok", "64 px foreground; data check clean"


def _sq(value: int | float, dtype: type, bg: int | float = 0) -> np.ndarray:
    m = np.full((32, 32), bg, dtype)
    m[4:12, 4:12] = value
    return m


def _save(arr: np.ndarray, mode: str | None = None, ext: str = ".png") -> Callable[[Path], None]:
    return lambda p: (
        Image.fromarray(arr, mode).save(p.with_suffix(ext))
        if mode
        else Image.fromarray(arr).save(p.with_suffix(ext))
    )


def _tiff(arr: np.ndarray) -> Callable[[Path], None]:
    import tifffile

    return lambda p: tifffile.imwrite(p.with_suffix(".tif"), arr)


def _palette(inverted: bool) -> Callable[[Path], None]:
    def make(p: Path) -> None:
        im = Image.fromarray(_sq(1, np.uint8), "P")
        im.putpalette([255, 255, 255, 0, 0, 0] if inverted else [0, 0, 0, 200, 0, 0])
        im.save(p.with_suffix(".png"))

    return make


def _alpha_only(p: Path) -> None:
    a = np.zeros((32, 32, 4), np.uint8)
    a[..., :3] = 255
    a[4:12, 4:12, 3] = 255
    Image.fromarray(a, "RGBA").save(p.with_suffix(".png"))


def _one_bit(p: Path) -> None:
    Image.fromarray(_sq(255, np.uint8)).convert("1").save(p.with_suffix(".png"))


def _jpeg(p: Path) -> None:
    Image.fromarray(_sq(255, np.uint8)).save(p.with_suffix(".jpg"), quality=70)


def _truncated(p: Path) -> None:
    Image.fromarray(_sq(255, np.uint8)).save(p.with_suffix(".png"))
    b = p.with_suffix(".png").read_bytes()
    p.with_suffix(".png").write_bytes(b[: len(b) // 2])


def _wrong_size(p: Path) -> None:
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(p.with_suffix(".png"))


def _cmyk(p: Path) -> None:
    Image.fromarray(_sq(255, np.uint8)).convert("CMYK").save(p.with_suffix(".jpg"))


_mask_case("16-bit {0, 65535}", _save(_sq(65535, np.uint16)), "fg")
_mask_case("16-bit {0, 1}", _save(_sq(1, np.uint16)), "fg")
_mask_case("float32 TIFF {0.0, 1.0} (refused by decision)", _tiff(_sq(1.0, np.float32)), "refused")
_mask_case("bool TIFF", _tiff(_sq(True, np.bool_)), "fg")
_mask_case("palette, index 0 white, 1 black", _palette(True), "fg")
_mask_case("palette, index 1 red", _palette(False), "fg")
_mask_case("alpha-only annotation on white", _alpha_only, "fg")
_mask_case("1-bit PNG", _one_bit, "fg")
_mask_case("JPEG 0/255 (near-binary noise)", _jpeg, "fg")
_mask_case("CMYK JPEG", _cmyk, "fg")
_mask_case(
    "three values {0, 128, 255}",
    lambda p: Image.fromarray(
        np.where(np.arange(32)[None, :] < 10, 0, np.where(np.arange(32)[None, :] < 20, 128, 255))
        .astype(np.uint8)
        .repeat(32, 0)
    ).save(p.with_suffix(".png")),
    "refused",
)
_mask_case("truncated PNG", _truncated, "refused")
_mask_case("size differs from the image", _wrong_size, "refused")
_mask_case(
    "float32 TIFF with NaN",
    _tiff(np.where(_sq(1.0, np.float32) > 0, np.nan, 0).astype(np.float32)),
    "refused",
)
_mask_case("int8 TIFF {0, -1} (refused by decision)", _tiff(_sq(-1, np.int8)), "refused")


# ---- volumes


def _predict_volume(
    ws: Workspace, arr: np.ndarray | None, zooms=None, raw: bytes | None = None, name="v.nii.gz"
):
    d = ws.new()
    path = d / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        nifti(path, arr, zooms)
    out = d / "out"
    return cli("predict", ws.ckpt, path, "--out", out, "--no-progress", timeout=120), out


def _volume_case(name: str, arr_fn, want: str, zooms=None, raw=None, fname="v.nii.gz") -> None:
    @case(f"NIfTI {name} (predict)", "volume", "mask written" if want == "ok" else "one line")
    def run(ws: Workspace) -> tuple[str, str]:
        r, out = _predict_volume(ws, arr_fn() if arr_fn else None, zooms, raw, fname)
        if want == "ok":

            def check() -> str | None:
                masks = list(out.glob("*_mask.nii.gz"))
                if not masks:
                    return "no mask"
                import nibabel as nib

                m = np.asarray(nib.load(str(masks[0])).dataobj)
                src = arr_fn()
                if src.ndim == 4 and src.shape[-1] == 1:  # a trailing axis of one is dropped
                    src = src[..., 0]
                return None if m.shape == src.shape else f"mask shape {m.shape} vs {src.shape}"

            return accepted(r, check)
        return refused(r, fname)


def _vol(dtype=np.float32, shape=(32, 32, 3)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(0, 300, shape)).astype(dtype)


_volume_case(
    "with +inf and -inf voxels",
    lambda: np.where(np.eye(32)[..., None] > 0, np.inf, _vol()).astype(np.float32),
    "ok",
)
_volume_case("2-D (H x W)", lambda: _vol(shape=(32, 32)), "ok")
_volume_case("5-D", lambda: _vol(shape=(32, 32, 2, 1, 2)), "refused")
_volume_case("zero-size dimension", lambda: _vol(shape=(32, 0, 3)), "refused")
_volume_case("zooms 0 and NaN", lambda: _vol(), "ok", zooms=(0.0, float("nan"), 1.0))
_volume_case("constant volume", lambda: np.full((32, 32, 3), 7, np.float32), "ok")
_volume_case("all -inf", lambda: np.full((32, 32, 3), -np.inf, np.float32), "refused")
_volume_case("float64 1e300 values", lambda: _vol(np.float64) * 1e300, "refused")
_volume_case(".nii.gz that is not gzip", None, "refused", raw=b"\x00" * 400)
_volume_case(
    "truncated gzip", None, "refused", raw=gzip.compress(b"\x5c\x01" + b"\x00" * 2000)[:60]
)
_volume_case("complex64 voxels", lambda: _vol().astype(np.complex64), "refused")
_volume_case("4-D with one channel", lambda: _vol(shape=(32, 32, 3, 1)), "ok")


# ---- command-line arguments


def _arg_case(cmd: str, extra: list[str], needle: str) -> None:
    @case(f"{cmd} {' '.join(extra)!s}", "cli", "one line")
    def run(ws: Workspace) -> tuple[str, str]:
        d = ws.new()
        if cmd == "predict":
            args = ["predict", ws.ckpt, ws.image, "--out", d / "o", "--no-progress", *extra]
        elif cmd == "evaluate":
            args = [*evaluate_args(ws.ckpt, ws.data, d / "o"), *extra]
        elif cmd == "train":
            args = ["train", "--config", ws.config(d), *extra]
        elif cmd == "profile":
            args = [
                "profile",
                "medspikeformer",
                "--size",
                "32",
                "--base-channels",
                "4",
                "--no-layers",
                *extra,
            ]
        elif cmd == "explain":
            args = ["explain", ws.ckpt, ws.image, "--out", d / "x.png", "--no-teacher", *extra]
        elif cmd == "export":
            args = ["export", ws.ckpt, "--onnx", d / "m.onnx", "--no-verify", *extra]
        else:
            args = ["data", "show", "folder", "--root", ws.data, "--out", d / "g.png", *extra]
        return refused(cli(*args, timeout=150), needle)


for _cmd, _extra, _needle in [
    ("predict", ["--threshold", "nan"], "threshold"),
    ("predict", ["--threshold", "1.5"], "threshold"),
    ("predict", ["--overlap", "1.0", "--mode", "sliding"], "overlap"),
    ("predict", ["--overlap", "-0.1", "--mode", "sliding"], "overlap"),
    ("predict", ["--sw-batch-size", "0", "--mode", "sliding"], "sw_batch_size"),
    ("predict", ["--block", "0"], "block"),
    ("predict", ["--max-pixels", "0"], "max_pixels"),
    ("predict", ["--size", "0"], "size"),
    ("predict", ["--size", "7"], "size"),
    ("predict", ["--size", "100000"], "size"),
    ("predict", ["--ct-window", "400", "-1000"], "CT window"),
    ("predict", ["--ct-window", "nan", "1"], "CT window"),
    ("predict", ["--device", ""], "device"),
    ("predict", ["--device", "cpu\n"], "device"),
    ("evaluate", ["--batch-size", "0"], "batch"),
    ("evaluate", ["--num-workers", "-1"], "num-workers"),
    ("evaluate", ["--grid", "-1"], "grid"),
    ("evaluate", ["--size", "0"], "size"),
    ("evaluate", ["--threshold", "inf"], "threshold"),
    ("train", ["--epochs", "0"], "epochs"),
    ("train", ["--lr", "nan"], "lr"),
    ("train", ["--lr", "inf"], "lr"),
    ("train", ["--size", "-32"], "size"),
    ("train", ["--batch-size", "100000000000000000000"], "batch"),
    ("train", ["--num-workers", "-2"], "num_workers"),
    ("profile", ["--batch", "0"], "batch"),
    ("profile", ["--timesteps", "0"], "timesteps"),
    ("profile", ["--timesteps", "100000"], "timesteps"),
    ("profile", ["--neuron", "ilif", "--levels", "0"], "levels"),
    ("profile", ["--in-channels", "0"], "channels"),
    ("explain", ["--alpha", "2"], "alpha"),
    ("explain", ["--alpha", "nan"], "alpha"),
    ("export", ["--opset", "0"], "opset"),
    ("export", ["--opset", "99999"], "opset"),
    ("explain", ["--alpha", "-0.1"], "alpha"),
    ("data", ["-n", "0"], "-n"),
]:
    _arg_case(_cmd, _extra, _needle)


@case("predict a missing image named with ESC and BEL", "cli", "one line, escaped")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    r = cli("predict", ws.ckpt, d / "a\x1b[2J\x07.png", "--out", d / "o", "--no-progress")
    cls, obs = refused(r, "a")
    if "\x1b" in r.err or "\x07" in r.err:
        return "security", "control characters printed raw"
    return cls, obs


# ---- interrupted runs


def _interrupt_train(ws: Workspace, sig: int, after_epoch: bool) -> tuple[str, str]:
    d = ws.new()
    data = ws.folder(d / "ds", n=8)
    cfg = ws.config(d, data_root=data, train__epochs=50)
    run = d / "run"

    def when() -> bool:
        return (run / "last.pt").exists() if after_epoch else (run / "config.yaml").exists()

    r = cli_signalled(["train", "--config", cfg, "--out", run], sig, when)
    if r.hung:
        return "hang", "did not stop"
    left = tmp_files(d)
    if left:
        return "lost file", f"left {left}"
    if (run / ".lock").exists():
        return "lost file", "lock file left"
    if "Traceback" in r.text:
        return "traceback", _short(r.err.splitlines()[-1])
    want = 130 if sig == signal.SIGINT else 143
    if r.rc != want:
        return "silent wrong", f"exit {r.rc}, want {want}"
    if after_epoch:
        res = cli("train", "--resume", run, "--epochs", "2")
        if res.rc != 0:
            return "silent wrong", f"resume failed: {_short(res.err)}"
    return "ok", f"exit {r.rc}, no temp file, lock released"


@case("SIGINT train during the first epoch", "interrupt", "exit 130, no temp file, lock released")
def _(ws: Workspace) -> tuple[str, str]:
    return _interrupt_train(ws, signal.SIGINT, False)


@case("SIGTERM train during the first epoch", "interrupt", "exit 143, no temp file, lock released")
def _(ws: Workspace) -> tuple[str, str]:
    return _interrupt_train(ws, signal.SIGTERM, False)


@case("SIGTERM train after a checkpoint, then --resume", "interrupt", "exit 143, resumable")
def _(ws: Workspace) -> tuple[str, str]:
    return _interrupt_train(ws, signal.SIGTERM, True)


def _interrupt_predict(ws: Workspace, sig: int) -> tuple[str, str]:
    d = ws.new()
    imgs = d / "imgs"
    imgs.mkdir()
    for i in range(200):
        (imgs / f"i{i:03d}.png").write_bytes(ws.image.read_bytes())
    out = d / "out"
    r = cli_signalled(
        ["predict", ws.ckpt, imgs, "--out", out, "--no-progress"],
        sig,
        lambda: out.exists() and len(list(out.iterdir())) > 3,
    )
    if r.hung:
        return "hang", "did not stop"
    left = tmp_files(d)
    if left:
        return "lost file", f"left {left[:3]}"
    empty = [p.name for p in out.glob("*") if p.is_file() and p.stat().st_size == 0]
    if empty:
        return "lost file", f"0-byte outputs {empty[:3]}"
    if "Traceback" in r.text:
        return "traceback", _short(r.err.splitlines()[-1])
    return "ok", f"exit {r.rc}, {len(list(out.iterdir()))} whole masks, no temp file"


@case("SIGTERM predict mid-folder", "interrupt", "no temp or 0-byte file")
def _(ws: Workspace) -> tuple[str, str]:
    return _interrupt_predict(ws, signal.SIGTERM)


@case("SIGINT predict mid-folder", "interrupt", "no temp or 0-byte file")
def _(ws: Workspace) -> tuple[str, str]:
    return _interrupt_predict(ws, signal.SIGINT)


@case("SIGTERM evaluate mid-split", "interrupt", "no temp file, exit 143")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    data = ws.folder(d / "ds", n=200)
    out = d / "o"
    cache = d / "cache"
    r = cli_signalled(
        evaluate_args(ws.ckpt, data, out, cache),
        signal.SIGTERM,
        lambda: cache.exists() and sum(1 for _ in cache.rglob("*.npz")) > 5,
    )
    left = tmp_files(d)
    if left:
        return "lost file", f"left {left[:3]}"
    if "Traceback" in r.text:
        return "traceback", _short(r.err.splitlines()[-1])
    if r.rc != 143:
        return "silent wrong", f"exit {r.rc}"
    return "ok", "exit 143, no temp file"


@case("SIGTERM export --onnx while exporting", "interrupt", "no temp file, no partial ONNX")
def _(ws: Workspace) -> tuple[str, str]:
    d = ws.new()
    r = cli_signalled(
        ["export", ws.ckpt, "--onnx", d / "m.onnx"], signal.SIGTERM, lambda: any(d.iterdir())
    )
    left = tmp_files(d)
    if left:
        return "lost file", f"left {left}"
    if (d / "m.onnx").exists() and r.rc != 0:
        return "lost file", "partial m.onnx after a failure"
    if "Traceback" in r.text:
        return "traceback", _short(r.err.splitlines()[-1])
    return "ok", f"exit {r.rc}, no temp file"


# ---- data folders


def _data_case(name: str, build: Callable[[Path], None], want: str, needle: str = "") -> None:
    @case(
        f"data folder: {name}",
        "data",
        {"ok": "works / ignored", "refused": "data check lists it; train one line"}[want],
    )
    def run(ws: Workspace) -> tuple[str, str]:
        d = ws.new()
        data = d / "ds"
        ws.folder(data, n=4)
        build(data)
        chk = cli("data", "check", "folder", "--root", data)
        if "Traceback" in chk.text:
            return "traceback", "data check: " + _short(chk.err.splitlines()[-1])
        if want == "ok":
            if chk.rc != 0:
                return "silent wrong", f"data check exit {chk.rc}: {_short(chk.out[-200:])}"
            return "ok", "data check clean"
        if chk.rc != 1 or (needle and needle not in chk.out):
            return "silent wrong", f"data check exit {chk.rc}: {_short(chk.out[-200:])}"
        r = cli("train", "--config", ws.config(d, data_root=data))
        return refused(r, needle) if needle else refused(r)


def _hidden(data: Path) -> None:
    (data / "images" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (data / "images" / "._c0.png").write_bytes(b"\x00\x05\x16\x07")


def _dir_named_png(data: Path) -> None:
    (data / "images" / "c9.png").mkdir()


def _broken_link(data: Path) -> None:
    (data / "images" / "c8.png").symlink_to(data / "nowhere.png")


def _dup_mask_ext(data: Path) -> None:
    Image.open(data / "masks" / "c0.png").save(data / "masks" / "c0.bmp")


def _case_only(data: Path) -> None:
    (data / "images" / "c0.png").rename(data / "images" / "C0.png")


def _empty(data: Path) -> None:
    for p in list((data / "images").iterdir()) + list((data / "masks").iterdir()):
        p.unlink()


def _newline_name(data: Path) -> None:
    (data / "images" / "c0.png").rename(data / "images" / "c\n0.png")


def _tiny_image(data: Path) -> None:
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(data / "images" / "c0.png")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(data / "masks" / "c0.png")


_data_case("hidden .DS_Store and AppleDouble ._ files", _hidden, "ok")
_data_case("a folder named c9.png among the images (ignored)", _dir_named_png, "ok")
_data_case("a broken symlink c8.png", _broken_link, "refused", "c8")
_data_case("masks c0.png and c0.bmp (duplicate stems)", _dup_mask_ext, "refused", "c0")
_data_case("image C0.png, mask c0.png (case only)", _case_only, "refused", "0")
_data_case("empty images/ and masks/", _empty, "refused")
_data_case("a newline in an image name", _newline_name, "refused", "c\\n0")
_data_case("a 1 x 1 image and mask", _tiny_image, "ok")


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("-k", default=None, help="only cases whose name holds this")
    parser.add_argument("--spawn", action="store_true", help="a fresh interpreter per command")
    args = parser.parse_args()
    global SPAWN
    SPAWN = args.spawn
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if not SPAWN:  # import once what every command imports, then fork per command
        import torch  # noqa: F401

        from medspikeformer.cli import build_parser

        build_parser()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        ws = Workspace(Path(tmp))
        for name, surface, expected, fn in CASES:
            if args.k and args.k not in name:
                continue
            t0 = time.monotonic()
            try:
                cls, observed = fn(ws)
            except Exception as exc:
                cls, observed = "traceback", f"harness: {type(exc).__name__}: {_short(str(exc))}"
            rows.append((name, surface, expected, observed, cls))
            print(
                f"[{cls:>12}] {time.monotonic() - t0:5.1f}s {name}: {observed}",
                file=sys.stderr,
                flush=True,
            )
    esc = lambda s: s.replace("|", "\\|").replace("\n", "\\n")  # noqa: E731
    lines = ["| # | case | surface | expected | observed | class |", "|---|---|---|---|---|---|"]
    lines += [f"| {i} | {' | '.join(esc(c) for c in row)} |" for i, row in enumerate(rows, 1)]
    counts = Counter(r[4] for r in rows)
    lines += ["", f"{len(rows)} cases: " + ", ".join(f"{counts.get(c, 0)} {c}" for c in CLASSES)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if counts.get("ok", 0) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
