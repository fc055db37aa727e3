"""The prepared GPU check: one unattended run (≤ 9 minutes on one GPU) that answers "does it
train on a GPU, and where does the time go".

Parts (docs/performance.md, "On a GPU", says what each figure means):

0. ``preflight``: torch, CUDA, cuDNN, driver and Triton versions, the project's imports; a
   missing CUDA device or a failing import ends the check at once with one line;
1. ``tests``: ``pytest -m gpu``;
2. ``step``: the paper step (MedSpikeFormer + joint teacher, batch 8, 256², cuDNN benchmark on as
   the trainer sets it): step time, peak memory, kernels per step and MFU, in bf16 with the
   compiled LIF on/off, recomputation auto/off, ``channels_last`` on/off, and fp32 with TF32
   on/off. Each row is scored against the matmul peak of its own arithmetic (bf16, TF32 or
   fp32) and says which LIF backend really ran;
3. ``trace``: a profiler trace of 5 steps: GPU idle fraction, launches, top kernels;
4. ``compile``: ``train.compile: true`` with recomputation off and on: compile and step time;
5. ``loader``: fixed-time training on the Kvasir sample with ``num_workers`` 0/2/4: epoch wall
   time split into data wait, step, validation and checkpoint;
6. ``precision``: bf16 against fp32 on one fixed batch: spike and logit agreement;
7. ``deterministic``: one ``--deterministic`` step, twice: does it run, is it repeatable.

Each part writes ``partN_<name>.json`` in ``--out`` as it goes (after every row), and
``gpu_check.json`` + ``gpu_check.md`` (the summary) are rewritten after each part. A part cut
short by its time budget keeps its rows and says ``partial``; one cut short by SIGINT or SIGTERM
keeps them and says ``interrupted``, and the parts after it say they did not run.

``--device cpu --quick`` runs every part at tiny sizes (parts that need CUDA record
``skipped: needs CUDA``); ``make test`` runs it through tests/benchmarks/test_gpu_check.py, so the
script cannot rot before it meets a GPU. Usage::

    benchmarks/gpu_check.sh                         # = make gpu-check; CUDA, results in gpu-check/
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gc
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import torch  # noqa: E402 - after the path set-up, like the other benchmark scripts

import bench_common  # noqa: E402

#: Where the Kvasir sample is looked for when --data-root is not given (beside the checkout,
#: or a shared/ folder inside it as on the device machine).
DATA_ROOTS = (
    REPO.parent / "shared" / "data" / "kvasir-seg",
    REPO / "shared" / "data" / "kvasir-seg",
)
#: The CPU form's model: every code path of the paper model at a size that steps in milliseconds.
TINY = {"base_channels": 4, "num_units": 2, "timesteps": 2, "head_dim": 4}
TINY_SIZE = 16
NEEDS_CUDA = "skipped: needs CUDA"
#: Imports the check cannot run without (preflight fails on them) and ones it only reports.
REQUIRED_IMPORTS = ("medspikeformer.engine", "medspikeformer.models", "medspikeformer.data")
OPTIONAL_IMPORTS = ("monai", "albumentations", "nibabel", "tifffile", "cv2", "onnx", "triton")


class Interrupted(BaseException):
    """SIGINT/SIGTERM arrived: the running part keeps what it had, the rest do not run."""


class Skip(Exception):
    """A part that cannot run here (``str``: why); recorded as ``skipped``."""


class Budget:
    """Deadlines: the whole check, and the part now running (never past the whole)."""

    def __init__(self, total_s: float) -> None:
        self.start = time.perf_counter()
        self.end = self.start + total_s
        self.part_end = self.end

    def left(self) -> float:
        return min(self.end, self.part_end) - time.perf_counter()

    def begin(self, seconds: float) -> float:
        """Start a part of at most ``seconds`` (cut to what the whole has left)."""
        self.part_end = min(self.end, time.perf_counter() + seconds)
        return self.left()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class Check:
    """The run's state: arguments, budget, the report and where it is written."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.device = args.device
        self.cuda = args.device.startswith("cuda")
        self.quick = args.quick
        self.budget = Budget(args.budget_s)
        self.report: dict[str, Any] = {
            "machine": bench_common.machine_info(args.device),
            "quick": args.quick,
            "budget_s": args.budget_s,
            "argv": list(args.argv),
            "parts": {},
        }
        self.current: str | None = None

    def part_file(self, name: str) -> Path:
        return self.out / f"part{PART_NAMES.index(name)}_{name}.json"

    def save(self) -> None:
        """The running part's JSON, then ``gpu_check.json`` and the summary (each replaced whole,
        through a temporary file, so a reader never sees half of one)."""
        self.report["elapsed_s"] = round(self.budget.elapsed(), 1)
        if self.current is not None:
            _write_text(self.part_file(self.current), _dumps(self.report["parts"][self.current]))
        _write_text(self.out / "gpu_check.json", _dumps(self.report))
        _write_text(self.out / "gpu_check.md", markdown(self.report))

    def time_left(self, floor: float) -> bool:
        """Whether the part has more than ``floor`` seconds left (quick runs need less)."""
        return self.budget.left() > (floor / 4 if self.quick else floor)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str) + "\n"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ------------------------------------------------------------------------------- 0 preflight


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _driver() -> dict[str, Any]:
    """Driver version and GPU from ``nvidia-smi`` (absent on CPU machines: ``{}``)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    query = "--query-gpu=driver_version,name,memory.total"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
        ).stdout.strip()
        if out:
            driver, name, memory = (s.strip() for s in out.splitlines()[0].split(",")[:3])
            return {"driver": driver, "nvidia_smi_gpu": name, "nvidia_smi_memory": memory}
    return {}


def part_preflight(c: Check, part: dict[str, Any]) -> None:
    """Versions and imports; ``failed`` (which ends the check) when the device or an import is
    missing, with the one line that says which."""
    part["versions"] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "triton": _version("triton"),
        "python": sys.version.split()[0],
        **_driver(),
    }
    optional = {}
    for name in OPTIONAL_IMPORTS:
        try:
            module = importlib.import_module(name)
            optional[name] = getattr(module, "__version__", "present")
        except Exception:  # absent or broken: reported, not needed by the check
            optional[name] = None
    part["optional_imports"] = optional
    for name in REQUIRED_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise RuntimeError(f"cannot import {name}: {_first_line(exc)}") from exc
    if c.cuda:
        if not torch.cuda.is_available():
            where = "a CPU-only torch" if torch.version.cuda is None else "no visible CUDA device"
            raise RuntimeError(
                f"--device {c.device} but torch {torch.__version__} has {where}; "
                "run with --device cpu --quick, or PYTHON=... naming the node's CUDA torch"
            )
        props = torch.cuda.get_device_properties(torch.device(c.device))
        part["gpu"] = {
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "bf16": torch.cuda.is_bf16_supported(),
        }
        # One kernel: a driver too old for this torch's CUDA fails here, not in part 2.
        float((torch.ones(8, device=c.device) * 2).sum())


# ----------------------------------------------------------------------------------- 1 tests


def part_tests(c: Check, part: dict[str, Any]) -> None:
    """``pytest -m gpu`` in a child process, stopped at the part's deadline."""
    # The gpu-marked tests live in one file: collecting only it keeps an import error of some
    # unrelated test module (a dev dependency missing on the GPU host) from stopping the part.
    # No -n: pytest-xdist may be absent there, and these tests share one device anyway.
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider"]
    cmd.append("tests/engine/test_gpu.py")
    timeout = max(5.0, c.budget.left())
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
        )
    except subprocess.TimeoutExpired as exc:
        part.update(status="partial", notes=f"pytest -m gpu passed its {timeout:.0f} s budget")
        part["tail"] = (exc.stdout or b"").decode(errors="replace").splitlines()[-25:]
        return
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    counts = {
        k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", summary)
    }
    ok = proc.returncode in (0, 5) and not counts.get("failed") and not counts.get("errors")
    part.update(
        status="ok" if ok else "failed",
        returncode=proc.returncode,
        summary=summary,
        counts=counts,
        tail=proc.stdout.strip().splitlines()[-25:],
    )


# ------------------------------------------------------------------------------------ 2 step


def peak_key(precision: str, tf32: bool) -> str:
    """Which measured matmul peak a row is scored against: the arithmetic its matmuls and
    convolutions run in (bf16 under bf16 autocast; TF32 for fp32 with TF32 on; else fp32)."""
    if precision == "bf16":
        return "bf16"
    return "tf32" if tf32 else "fp32"


@contextlib.contextmanager
def tf32_mode(enabled: bool) -> Iterator[None]:
    """TF32 on or off for both cuBLAS matmuls and cuDNN convolutions, restored after."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool = True) -> Iterator[None]:
    """cuDNN autotuning as the trainer sets it on CUDA (on unless ``--deterministic``)."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


def measure_peaks(device: str, quick: bool) -> dict[str, dict[str, Any]]:
    """Matmul peaks (GFLOP/s) per arithmetic: fp32 (TF32 off), TF32 (CUDA only) and bf16."""
    n, repeat = (256, 3) if quick else (8192, 10)
    peaks = {}
    with tf32_mode(False):
        peaks["fp32"] = bench_common.matmul_peak_gflops(n, repeat, device, torch.float32)
    if device.startswith("cuda"):
        with tf32_mode(True):
            peaks["tf32"] = bench_common.matmul_peak_gflops(n, repeat, device, torch.float32)
    peaks["bf16"] = bench_common.matmul_peak_gflops(n, repeat, device, torch.bfloat16)
    return {k: {"gflops": v["gflops"], "name": v["name"]} for k, v in peaks.items()}


def step_variants(cuda: bool) -> list[dict[str, Any]]:
    """The rows of part 2: a bf16 base, then one change each. The base runs the LIF backend the
    trainer would use here (compiled on CUDA, eager on CPU); the other backend is its own row."""
    base_lif = "compiled" if cuda else "eager"
    base = {"precision": "bf16", "lif": base_lif, "recompute": "auto", "channels_last": False}
    other_lif = "eager" if cuda else "compiled"
    return [
        {**base, "label": "bf16 base", "tf32": False},
        {**base, "label": f"bf16 LIF {other_lif}", "lif": other_lif, "tf32": False},
        {**base, "label": "bf16 recompute off", "recompute": False, "tf32": False},
        {**base, "label": "bf16 channels_last", "channels_last": True, "tf32": False},
        {**base, "label": "fp32 TF32 on", "precision": "fp32", "tf32": True},
        {**base, "label": "fp32 TF32 off", "precision": "fp32", "tf32": False},
    ]


def needs_cuda(variant: dict[str, Any], cuda: bool) -> str | None:
    """Why a variant cannot run on this device (``None``: it can)."""
    if cuda:
        return None
    if variant["tf32"]:
        return f"{NEEDS_CUDA} (TF32 is a CUDA arithmetic)"
    if variant["lif"] == "compiled":
        return f"{NEEDS_CUDA} (the compiled LIF targets Triton; Inductor's CPU build takes minutes)"
    return None


def lif_backend(model: torch.nn.Module, requested: str) -> str:
    """Which LIF kernels the model's neurons ran: ``compiled``, ``eager``, or ``eager (compiled
    LIF fell back: ...)`` when a compiled kernel failed and was replaced by the eager one."""
    from medspikeformer.neurons import LIFNeuron

    kernels = {id(m._kernels): m._kernels for m in model.modules() if isinstance(m, LIFNeuron)}
    if not kernels:
        return "none"
    fused = [k for k in kernels.values() if k.backend == "fused"]
    if not fused:
        return "eager"
    if all(k.compiled for k in fused):
        return "compiled"
    return "eager (compiled LIF fell back)" if requested == "compiled" else "eager"


def recomputes(model: torch.nn.Module, batch: int, size: int, device: str) -> bool | None:
    """Whether the model's training forward recomputes its attention blocks at this batch and
    size on this device (``checkpoint_attention: auto`` decides by the device's memory)."""
    if not hasattr(model, "use_checkpoint"):
        return None
    was_training = model.training
    model.train()
    try:
        with torch.enable_grad():
            x = torch.empty(batch, model.in_channels, size, size, device=device)
            return bool(model.use_checkpoint(x))
    finally:
        model.train(was_training)


def forget_failed_lif_kernels() -> list[str]:
    """Drop the process-wide compiled LIF kernels that fell back to eager, so the next model
    builds them afresh: one failure must not turn every later row eager without saying so."""
    from medspikeformer.neurons import lif

    dropped = [
        f"{family}/{backend}"
        for (family, backend), k in list(lif._KERNELS.items())
        if backend == "fused" and not k.compiled
    ]
    for key in [k for k, v in lif._KERNELS.items() if k[1] == "fused" and not v.compiled]:
        del lif._KERNELS[key]
    return dropped


@contextlib.contextmanager
def captured_warnings(lines: list[str]) -> Iterator[None]:
    """Python warnings and the neurons' log warnings (the LIF fallback notice) into ``lines``."""

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage()[:300])

    handler = _Handler(logging.WARNING)
    logger = logging.getLogger("medspikeformer.neurons")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        lines.extend(str(w.message)[:300] for w in caught)
    finally:
        logger.removeHandler(handler)


def count_launches(step: Callable[[], None], device: str) -> dict[str, Any]:
    """One profiled step: device kernels (CUDA) and top-level aten ops."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        step()
        bench_common.sync(device)
    events = prof.events()
    counts: dict[str, Any] = {
        "ops_per_step": sum(
            1 for e in events if e.name.startswith("aten::") and e.cpu_parent is None
        )
    }
    if cuda:
        counts["kernels_per_step"] = sum(1 for e in events if e.device_type == DeviceType.CUDA)
    return counts


def paper_step(
    c: Any,
    batch: int,
    size: int,
    *,
    lif: str,
    recompute: Any,
    precision: str = "bf16",
    channels_last: bool = False,
    compile: bool = False,
) -> Any:
    """The engine's MedSpikeFormer + joint-teacher training step that every part times
    (``bench_train.build_step``), with this LIF backend and recomputation setting."""
    import bench_train

    step, _ = bench_train.build_step(
        "medspikeformer", batch, size, "joint", c.device, compile, channels_last,
        _step_overrides(c, lif, recompute), precision,
    )  # fmt: skip
    return step


def _step_overrides(c: Check, lif: str, recompute: Any) -> dict[str, Any]:
    sizes = dict(TINY) if c.quick else {}
    return {**sizes, "compile_neurons": lif == "compiled", "checkpoint_attention": recompute}


def _step_shape(c: Check) -> tuple[int, int]:
    return (2, TINY_SIZE) if c.quick else (8, 256)


def part_step(c: Check, part: dict[str, Any]) -> None:
    """Part 2: the paper step in each variant (one row each, written as it is measured)."""

    batch, size = _step_shape(c)
    part.update(batch=batch, size=size, teacher="joint", cudnn_benchmark=True, rows=[])
    part["peaks"] = measure_peaks(c.device, c.quick)
    c.save()
    # Useful FLOPs are those of the model, the same in every row (recomputation's repeated
    # forward is not useful work): counted once on a batch-2 step, scaled to the batch.
    nb = min(batch, 2)
    small = paper_step(c, nb, size, lif="eager", recompute=False, precision="auto")
    try:
        part["gflop_per_step"] = round(bench_common.count_flops(small) / 1e9 * batch / nb, 3)
    except Exception as exc:  # no FLOPs, no MFU: the timings still stand
        part["gflop_per_step"] = None
        part["notes"] = [f"FLOP count failed: {_first_line(exc)}"]
    del small
    with cudnn_benchmark(True):
        for variant in step_variants(c.cuda):
            row = {k: v for k, v in variant.items()}
            part["rows"].append(row)
            reason = needs_cuda(variant, c.cuda)
            if reason is not None:
                row["status"] = reason
            elif not c.time_left(30):
                row["status"] = "skipped: time budget spent"
                part["status"] = "partial"
            else:
                _measure_row(c, row, batch, size, part)
            c.save()


def _measure_row(c: Check, row: dict[str, Any], batch: int, size: int, part: dict) -> None:

    notes: list[str] = []
    row["peak_used"] = peak_key(row["precision"], row["tf32"])
    try:
        if c.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        with tf32_mode(row["tf32"]), captured_warnings(notes), bench_common.quiet_compile_errors():
            step = paper_step(
                c, batch, size, lif=row["lif"], recompute=row["recompute"],
                precision=row["precision"], channels_last=row["channels_last"],
            )  # fmt: skip
            timing = bench_common.time_fn(
                step, warmup=1 if c.quick else 3, repeat=1 if c.quick else 5, device=c.device
            )
            row["step_ms"] = round(1000 * timing["time_s"], 2)
            row["images_per_s"] = round(batch / timing["time_s"], 2)
            if c.cuda:
                row["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            row.update(count_launches(step, c.device))
            row["lif_backend"] = lif_backend(step.training_step.student, row["lif"])
            row["recomputes"] = recomputes(step.training_step.student, batch, size, c.device)
        measured = {"gflop": part["gflop_per_step"], "time_s": timing["time_s"]}
        bench_common.add_mfu(measured, part["peaks"].get(row["peak_used"]))
        row["mfu"] = measured.get("mfu")
        row["status"] = "ok"
        del step
    except Exception as exc:  # one row must not end the part
        row["status"] = "failed"
        row["error"] = _first_line(exc)
    except Interrupted:
        row["status"] = "interrupted"
        raise
    finally:
        dropped = forget_failed_lif_kernels()
        if dropped:
            notes.append(f"compiled LIF kernels fell back to eager ({', '.join(dropped)})")
        if notes:
            row["notes"] = notes[:5]
        if c.cuda:
            torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------- 3 trace


def _busy_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end)`` intervals (µs)."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def part_trace(c: Check, part: dict[str, Any]) -> None:
    """Part 3: the base row's step under the profiler for 5 steps (2 in the CPU form), after
    warm-up steps."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    batch, size = _step_shape(c)
    lif = "compiled" if c.cuda else "eager"
    steps = 2 if c.quick else 5
    with cudnn_benchmark(True), captured_warnings(part.setdefault("notes", [])):
        step = paper_step(c, batch, size, lif=lif, recompute="auto")
        for _ in range(1 if c.quick else 2):
            step()
        bench_common.sync(c.device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if c.cuda else [])
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            bench_common.sync(c.device)
            wall_us = (time.perf_counter() - t0) * 1e6
    trace = c.out / "part3_trace.json"
    prof.export_chrome_trace(str(trace))
    part.update(steps=steps, batch=batch, size=size, wall_ms=round(wall_us / 1000, 2))
    part["trace_file"] = trace.name
    part["lif_backend"] = lif_backend(step.training_step.student, lif)
    events = prof.events()
    part["ops_per_step"] = round(
        sum(1 for e in events if e.name.startswith("aten::") and e.cpu_parent is None) / steps
    )
    averages = prof.key_averages()
    if c.cuda:
        kernels = [e for e in events if e.device_type == DeviceType.CUDA]
        busy = _busy_us([(e.time_range.start, e.time_range.end) for e in kernels])
        launches = sum(1 for e in events if "LaunchKernel" in e.name)
        part["gpu_idle_fraction"] = round(max(0.0, 1 - busy / wall_us), 4)
        part["launches_per_step"] = round(launches / steps)
        part["kernels_per_step"] = round(len(kernels) / steps)
        key = "self_device_time_total"
        if averages and not hasattr(averages[0], key):  # older torch spells it self_cuda_time_total
            key = "self_cuda_time_total"
        rows = [a for a in averages if getattr(a, key, 0) > 0]
    else:
        part["gpu_idle_fraction"] = None
        part["notes"].append("GPU idle fraction and launches need CUDA; top CPU ops instead")
        key = "self_cpu_time_total"
        rows = list(averages)
    rows.sort(key=lambda a: getattr(a, key), reverse=True)
    total = sum(getattr(a, key) for a in rows) or 1.0
    part["top"] = [
        {
            "name": a.key[:120],
            "calls_per_step": round(a.count / steps, 1),
            "ms_per_step": round(getattr(a, key) / 1000 / steps, 3),
            "share": round(getattr(a, key) / total, 4),
        }
        for a in rows[:12]
    ]


# --------------------------------------------------------------------------------- 4 compile


def is_compiled(module: torch.nn.Module) -> bool:
    """Whether ``module`` is a ``torch.compile`` wrapper (the trainer falls back to the plain
    forward, with a warning, when its compile trial fails)."""
    return hasattr(module, "_orig_mod")


def part_compile(c: Check, part: dict[str, Any]) -> None:
    """Part 4: ``train.compile: true`` with recomputation on and off: compile and step time."""

    if not c.cuda:
        raise Skip(f"{NEEDS_CUDA} (compiling the whole model takes many minutes on a CPU)")
    batch, size = _step_shape(c)
    part.update(batch=batch, size=size, rows=[])
    with cudnn_benchmark(True):
        # Recomputation on first: the form Dynamo could not trace (issue 24, item 1).
        for recompute in (True, False):
            row: dict[str, Any] = {"recompute": recompute}
            part["rows"].append(row)
            if not c.time_left(40):
                row["status"] = "skipped: time budget spent"
                part["status"] = "partial"
                c.save()
                continue
            notes: list[str] = []
            try:
                torch._dynamo.reset()  # every row compiles from scratch: an honest compile time
                with captured_warnings(notes), bench_common.quiet_compile_errors():
                    t0 = time.perf_counter()
                    step = paper_step(
                        c, batch, size, lif="compiled", recompute=recompute, compile=True
                    )
                    step()
                    bench_common.sync(c.device)
                    row["compile_s"] = round(time.perf_counter() - t0, 1)
                    ts = step.training_step
                    row["compiled"] = is_compiled(ts.student_fwd)
                    timing = bench_common.time_fn(step, warmup=2, repeat=5, device=c.device)
                row["step_ms"] = round(1000 * timing["time_s"], 2)
                row["status"] = "ok" if row["compiled"] else "failed: fell back to eager"
                del step
            except Exception as exc:
                row.update(status="failed", error=_first_line(exc))
            except Interrupted:
                row["status"] = "interrupted"
                raise
            if notes:
                row["notes"] = notes[:5]
            torch.cuda.empty_cache()
            c.save()


# ---------------------------------------------------------------------------------- 5 loader


def _data_root(args: argparse.Namespace) -> Path | None:
    candidates = [Path(args.data_root)] if args.data_root else list(DATA_ROOTS)
    return next((p for p in candidates if p.is_dir()), None)


class _TimedLoader:
    """A DataLoader whose ``next()`` waits are summed into ``record["data_wait_s"]``."""

    def __init__(self, loader: Any, record: dict[str, float]) -> None:
        self.loader, self.record = loader, record

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.loader)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                self.record["data_wait_s"] += time.perf_counter() - t0
            yield batch


@contextlib.contextmanager
def epoch_split(epochs: list[dict[str, float]]) -> Iterator[None]:
    """Time each epoch's parts without touching the trainer: data wait (the loader's ``next``),
    the training loop, validation and checkpoint writes. One record per epoch in ``epochs``;
    ``step_s`` is the loop without its data wait, ``other_s`` what is left of the epoch."""
    from medspikeformer.engine import trainer as trainer_mod

    run_cls, ckpt = trainer_mod._Run, trainer_mod.ckpt_mod
    train_epoch, validate, save = run_cls.train_epoch, run_cls.validate, ckpt.save_checkpoint
    submit = ckpt.CheckpointWriter.submit
    loop = threading.current_thread()

    def timed(key: str, fn: Callable) -> Callable:
        # Only the loop's own time: last.pt is written by a background thread (what the loop
        # waits for it is the CPU copy and the previous write, inside submit).
        def wrapper(*a: Any, **k: Any) -> Any:
            if threading.current_thread() is not loop:
                return fn(*a, **k)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                if epochs:
                    epochs[-1][key] += time.perf_counter() - t0
                    epochs[-1]["end"] = time.perf_counter()

        return wrapper

    def timed_epoch(self: Any, epoch: int) -> Any:
        record = {"start": time.perf_counter(), "data_wait_s": 0.0, "val_s": 0.0, "ckpt_s": 0.0}
        epochs.append({**record, "train_s": 0.0})
        loader = self.train_loader
        self.train_loader = _TimedLoader(loader, epochs[-1])
        try:
            return timed("train_s", train_epoch)(self, epoch)
        finally:
            self.train_loader = loader

    run_cls.train_epoch, run_cls.validate = timed_epoch, timed("val_s", validate)
    ckpt.save_checkpoint = timed("ckpt_s", save)
    ckpt.CheckpointWriter.submit = timed("ckpt_s", submit)
    try:
        yield
    finally:  # also when interrupted: the epochs timed so far are kept
        run_cls.train_epoch, run_cls.validate, ckpt.save_checkpoint = train_epoch, validate, save
        ckpt.CheckpointWriter.submit = submit
        for e in epochs:
            e["epoch_s"] = e.pop("end", e["start"]) - e.pop("start")
            e["step_s"] = e["train_s"] - e["data_wait_s"]
            e["other_s"] = e["epoch_s"] - e["train_s"] - e["val_s"] - e["ckpt_s"]
            for k in list(e):
                e[k] = round(e[k], 3)


def part_loader(c: Check, part: dict[str, Any]) -> None:
    """Part 5: fixed-time training per ``num_workers``, each epoch's wall time split."""
    from medspikeformer.engine import load_config, train

    args = c.args
    root = _data_root(args) if (args.data_root or not c.quick) else None
    if root is None and not c.quick:
        tried = ", ".join(str(p) for p in ([args.data_root] if args.data_root else DATA_ROOTS))
        raise Skip(f"skipped: Kvasir sample not found at {tried}")
    workers = [int(w) for w in args.workers.split(",")]
    augment: dict[str, Any] = {}
    if importlib.util.find_spec("albumentations") is None:
        # The paper augmentation needs albumentations, which a GPU node may lack; the loader's
        # timing is still worth having, and the row says it ran without augmentation.
        augment = {"augment": "none"}
        part["notes"] = ["albumentations absent: trained with data.augment=none"]
    part.update(dataset="kvasir" if root else "synthetic", data_root=root and str(root), rows=[])
    # Workers are kept across epochs; the most workers once more re-forked every epoch, which
    # shows what keeping them saves (in data wait of the later epochs).
    runs = [(nw, True) for nw in workers] + [(max(workers), False)] * (max(workers) > 0)
    for index, (nw, persistent) in enumerate(runs):
        row: dict[str, Any] = {"num_workers": nw, "persistent_workers": persistent and nw > 0}
        part["rows"].append(row)
        runs_left = len(runs) - index
        seconds = min(args.loader_s, (c.budget.left() - (2 if c.quick else 15)) / runs_left)
        if seconds < (1 if c.quick else 10):
            row["status"] = "skipped: time budget spent"
            part["status"] = "partial"
            c.save()
            continue
        out = c.out / f"part5_run_w{nw}{'' if persistent else '_reforked'}"
        if out.exists():
            shutil.rmtree(out)
        overrides: dict[str, Any] = {
            "out": str(out),
            "data": {"num_workers": nw, **augment, **({"root": str(root)} if root else {})},
            "train": {"max_time_s": seconds, "progress": False, "device": c.device, "epochs": 1000},
        }
        if c.quick:
            overrides["model"] = dict(TINY)
            overrides["data"].update(size=TINY_SIZE, cache_dir=False)
            if root is None:
                overrides["data"].update(options={"num_samples": 8}, split_spec="50/25/25")
            # Two epochs, the warm-up one and one after it; the time limit is only a ceiling
            # (a shared CPU must not cut the run to one epoch and leave no later-epoch split).
            overrides["train"].update(epochs=2, batch_size=4)
        epochs: list[dict[str, float]] = []
        try:
            with epoch_split(epochs), cudnn_benchmark(c.cuda), persistent_workers(persistent):
                cfg = load_config("kvasir" if root else "synthetic", overrides=overrides)
                t0 = time.perf_counter()
                result = train(cfg, log=lambda m: None)
            row.update(
                status="ok",
                budget_s=round(seconds, 1),
                wall_s=round(time.perf_counter() - t0, 1),
                epochs_run=result["epochs_run"],
                best_val_dsc=result["best_metrics"].get("val_dsc"),
                first_epoch=epochs[0] if epochs else None,
                # Epoch 1 holds the warm-up (cuDNN autotuning, compiled kernels, worker start).
                later_epochs_mean=_mean_split(epochs[1:]),
            )
        except Exception as exc:
            row.update(status="failed", error=_first_line(exc), epochs=epochs)
        except Interrupted:
            row.update(status="interrupted", epochs=epochs)
            raise
        c.save()


@contextlib.contextmanager
def persistent_workers(keep: bool) -> Iterator[None]:
    """The trainer's loaders with workers kept across epochs (its default) or not."""
    from medspikeformer.engine import trainer as trainer_mod

    build = trainer_mod.build_loader
    if not keep:
        trainer_mod.build_loader = lambda *a, **k: build(*a, **{**k, "persistent": False})
    try:
        yield
    finally:
        trainer_mod.build_loader = build


def _mean_split(epochs: list[dict[str, float]]) -> dict[str, float] | None:
    if not epochs:
        return None
    return {k: round(sum(e[k] for e in epochs) / len(epochs), 3) for k in epochs[0]}


# ------------------------------------------------------------------------------- 6 precision


def part_precision(c: Check, part: dict[str, Any]) -> None:
    """Part 6: one fixed batch through the same eval-mode model in fp32 and under bf16
    autocast: the share of equal spikes (per neuron layer and overall) and logit agreement."""
    from medspikeformer.models import create_model
    from medspikeformer.neurons import LIFNeuron

    batch, size = _step_shape(c)
    torch.manual_seed(0)
    model = create_model(
        "medspikeformer", **_step_overrides(c, "compiled" if c.cuda else "eager", False)
    )
    model = model.to(c.device).eval()
    x = torch.randn(batch, model.in_channels, size, size, device=c.device)
    neurons = [(n, m) for n, m in model.named_modules() if isinstance(m, LIFNeuron)]
    spikes: dict[str, list[torch.Tensor]] = {}  # the fp32 pass's spikes, per call
    calls: dict[str, int] = {}
    compare: dict[str, list[int]] = {}  # name -> [equal, total] over the bf16 pass
    mode = {"record": True}

    def hook(name: str) -> Callable:
        def fn(_m: Any, _i: Any, out: torch.Tensor) -> None:
            fired = out.detach() > 0
            if mode["record"]:
                spikes.setdefault(name, []).append(fired)
                return
            k = calls[name] = calls.get(name, -1) + 1
            equal, total = compare.setdefault(name, [0, 0])
            ref = spikes[name][k]
            compare[name] = [equal + int((fired == ref).sum()), total + fired.numel()]

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in neurons]
    try:
        with torch.no_grad(), tf32_mode(False):
            ref_logits = model(x).float()
            mode["record"] = False
            with torch.autocast(torch.device(c.device).type, dtype=torch.bfloat16):
                logits = model(x).float()
    finally:
        for h in handles:
            h.remove()
    layers = {n: v[0] / v[1] for n, v in compare.items() if v[1]}
    equal, total = sum(v[0] for v in compare.values()), sum(v[1] for v in compare.values())
    diff = (logits - ref_logits).abs()
    part.update(
        batch=batch,
        size=size,
        lif_backend=lif_backend(model, "compiled" if c.cuda else "eager"),
        neuron_layers=len(layers),
        spike_agreement=round(equal / total, 6) if total else None,
        worst_layers=sorted(
            ({"layer": n, "agreement": round(a, 6)} for n, a in layers.items()),
            key=lambda r: r["agreement"],
        )[:5],
        logit_max_abs_diff=round(float(diff.max()), 5),
        logit_mean_abs_diff=round(float(diff.mean()), 6),
        mask_agreement=round(float(((logits > 0) == (ref_logits > 0)).float().mean()), 6),
    )


# --------------------------------------------------------------------------- 7 deterministic


def part_deterministic(c: Check, part: dict[str, Any]) -> None:
    """Part 7: ``medspikeformer train --deterministic`` for one step, twice, each in a fresh
    process (cuBLAS reads its workspace setting when it first runs in a process, and the parts
    before this one have run it): it runs, and both runs end with the same weights."""
    import hashlib

    from medspikeformer.engine.checkpoint import load_checkpoint

    batch, size = (2, TINY_SIZE) if c.quick else (4, 256)
    model = [f"--set=model.{k}={v}" for k, v in TINY.items()] if c.quick else []
    part.update(batch=2 * batch, size=size, weight_digests=[], runs_s=[])
    for run in range(2):
        if not c.time_left(15):
            part.update(status="partial", notes="time budget spent before the second run")
            break
        out = c.out / f"part7_run{run}"
        if out.exists():
            shutil.rmtree(out)
        # 4 × batch samples split half/quarter/quarter, at a batch of 2 × batch: one step.
        cmd = [sys.executable, "-m", "medspikeformer", "train", "--config", "synthetic",
               "--deterministic", "--out", str(out), "--epochs", "1", "--batch-size",
               str(2 * batch), "--size", str(size), "--split", "50/25/25", "--num-workers", "0",
               "--device", c.device, "--no-progress", f"--set=data.options.num_samples={4 * batch}",
               "--set=data.cache_dir=false", *model]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=max(5.0, c.budget.left())
        )
        part["runs_s"].append(round(time.perf_counter() - t0, 1))
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
            part.update(status="failed", error=f"run {run} exited {proc.returncode}", tail=tail)
            return
        state = load_checkpoint(out / "last.pt")["state_dict"]
        h = hashlib.sha256()
        for name in sorted(state):
            h.update(name.encode())
            h.update(state[name].detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        part["weight_digests"].append(h.hexdigest()[:16])
        c.save()
    if len(part["weight_digests"]) == 2:
        part["repeatable"] = part["weight_digests"][0] == part["weight_digests"][1]


# --------------------------------------------------------------------------------- summary


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def markdown(report: dict[str, Any]) -> str:
    """The summary: machine, one line per part, then each part's figures."""
    m, parts = report["machine"], report["parts"]
    pre = parts.get("preflight", {}).get("versions", {})
    lines = [
        "# GPU check",
        "",
        f"- device: {m.get('gpu', m.get('device'))}; torch {pre.get('torch', m.get('torch'))}, "
        f"CUDA {pre.get('cuda')}, driver {pre.get('driver')}, triton {pre.get('triton')}; "
        f"{m.get('date_utc')}",
        f"- mode: {'quick (tiny sizes)' if report['quick'] else 'full'}; elapsed "
        f"{report.get('elapsed_s', 0):.0f} s of a {report['budget_s']:.0f} s budget",
        "",
        "| part | status | s | notes |",
        "|---|---|---|---|",
    ]
    for i, name in enumerate(PART_NAMES):
        p = parts.get(name)
        if p is None:
            lines.append(f"| {i} {name} | not run yet | – | |")
            continue
        note = p.get("notes", p.get("summary", ""))
        note = "; ".join(note) if isinstance(note, list) else str(note)
        lines.append(
            f"| {i} {name} | {p.get('status')} | {_fmt(p.get('part_s'), '.0f')} | {note[:120]} |"
        )
    s = parts.get("step", {})
    if s.get("rows"):
        peaks = ", ".join(
            f"{k} {_fmt(v.get('gflops'), '.0f')}" for k, v in s.get("peaks", {}).items()
        )
        lines += [
            "",
            f"## 2 paper step (batch {s.get('batch')}, {s.get('size')}², joint teacher, cuDNN "
            f"benchmark on; {_fmt(s.get('gflop_per_step'), '.1f')} GFLOP/step; peaks GFLOP/s: {peaks})",
            "",
            "| row | LIF ran | recompute → recomputes | channels_last | step ms | images/s | peak GB "
            "| kernels/step (CPU: aten ops) | MFU (peak) | status |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in s["rows"]:
            lines.append(
                f"| {r['label']} | {r.get('lif_backend', r['lif'])} "
                f"| {r['recompute']} → {_fmt(r.get('recomputes'))} "
                f"| {_fmt(r['channels_last'])} | {_fmt(r.get('step_ms'), '.1f')} "
                f"| {_fmt(r.get('images_per_s'), '.1f')} | {_fmt(r.get('peak_gpu_gb'), '.2f')} "
                f"| {_fmt(r.get('kernels_per_step', r.get('ops_per_step')))} "
                f"| {_fmt(r.get('mfu'), '.3f')} ({r.get('peak_used', '–')}) "
                f"| {r.get('status')}{': ' + r['error'][:60] if r.get('error') else ''} |"
            )
    t = parts.get("trace", {})
    if t.get("top"):
        lines += [
            "",
            f"## 3 trace ({t.get('steps')} steps, LIF {t.get('lif_backend')}): GPU idle "
            f"{_fmt(t.get('gpu_idle_fraction'))}, launches/step {_fmt(t.get('launches_per_step'))}, "
            f"aten ops/step {_fmt(t.get('ops_per_step'))}; file {t.get('trace_file')}",
            "",
            "| kernel / op | calls/step | ms/step | share |",
            "|---|---|---|---|",
        ]
        for k in t["top"][:8]:
            lines.append(
                f"| `{k['name'][:70]}` | {k['calls_per_step']} | {k['ms_per_step']} | {k['share']:.1%} |"
            )
    comp = parts.get("compile", {})
    if comp.get("rows"):
        lines += [
            "",
            "## 4 train.compile",
            "",
            "| recompute | compiled | compile s | step ms | status |",
            "|---|---|---|---|---|",
        ]
        for r in comp["rows"]:
            lines.append(
                f"| {_fmt(r['recompute'])} | {_fmt(r.get('compiled'))} | {_fmt(r.get('compile_s'), '.1f')} "
                f"| {_fmt(r.get('step_ms'), '.1f')} | {r.get('status')} |"
            )
    ld = parts.get("loader", {})
    if ld.get("rows"):
        lines += [
            "",
            f"## 5 loader ({ld.get('dataset')}): seconds per epoch after the first",
            "",
            "| num_workers | persistent | epochs | epoch | data wait | step | validation | checkpoint | other | status |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in ld["rows"]:
            e = r.get("later_epochs_mean") or r.get("first_epoch") or {}
            lines.append(
                f"| {r['num_workers']} | {_fmt(r.get('persistent_workers'))} "
                f"| {_fmt(r.get('epochs_run'))} | {_fmt(e.get('epoch_s'))} "
                f"| {_fmt(e.get('data_wait_s'))} | {_fmt(e.get('step_s'))} | {_fmt(e.get('val_s'))} "
                f"| {_fmt(e.get('ckpt_s'))} | {_fmt(e.get('other_s'))} | {r.get('status')} |"
            )
    pr = parts.get("precision", {})
    if pr.get("spike_agreement") is not None:
        lines += [
            "",
            f"## 6 bf16 vs fp32: spikes equal {_fmt(pr['spike_agreement'], '.6f')} over "
            f"{pr['neuron_layers']} neuron layers; logits max |Δ| {_fmt(pr['logit_max_abs_diff'])}, "
            f"mean |Δ| {_fmt(pr['logit_mean_abs_diff'])}; masks equal {_fmt(pr['mask_agreement'], '.6f')}",
        ]
    d = parts.get("deterministic", {})
    if d.get("weight_digests"):
        lines += ["", f"## 7 --deterministic: ran, repeatable {_fmt(d.get('repeatable'))}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- main

PARTS: dict[str, tuple[Callable[[Check, dict], None], float, float]] = {
    # name: (function, seconds on a GPU, seconds in the CPU form). The CPU form's parts take a
    # few seconds each; their ceilings are wide because the machine running `make test` may be
    # shared, and a row skipped for time there would hide a broken code path.
    "preflight": (part_preflight, 20, 20),
    "tests": (part_tests, 60, 60),
    "step": (part_step, 150, 60),
    "trace": (part_trace, 25, 30),
    "compile": (part_compile, 90, 5),
    "loader": (part_loader, 90, 40),
    "precision": (part_precision, 15, 20),
    "deterministic": (part_deterministic, 30, 60),
}
PART_NAMES = tuple(PARTS)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_part(c: Check, name: str) -> dict[str, Any]:
    """Run one part into its record (kept, saved and marked whatever ends it)."""
    fn, gpu_s, cpu_s = PARTS[name]
    part: dict[str, Any] = {"status": "running"}
    c.report["parts"][name] = part
    c.current = name
    left = c.budget.begin((cpu_s if c.quick else gpu_s) * c.args.time_scale)
    print(f"[gpu-check] {PART_NAMES.index(name)} {name}: budget {left:.0f} s", flush=True)
    t0 = time.perf_counter()
    try:
        if left <= 1:
            raise Skip("skipped: overall time budget spent")
        c.save()
        fn(c, part)
        if part["status"] == "running":
            part["status"] = "ok"
    except Skip as why:
        part.update(status="skipped", notes=str(why))
    except Interrupted as sig:
        part.update(
            status="interrupted",
            notes=f"cut short by {sig} after {time.perf_counter() - t0:.0f} s; what it had is kept",
        )
        raise
    except Exception as exc:  # a part's failure is a result, not the end of the check
        part.update(status="failed", error=_first_line(exc))
        part["traceback"] = traceback.format_exc().splitlines()[-12:]
    finally:
        part["part_s"] = round(time.perf_counter() - t0, 1)
        c.save()
        c.current = None
    return part


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the CPU form)")
    p.add_argument("--out", default="gpu-check", help="output folder")
    p.add_argument("--data-root", help="Kvasir-SEG folder (default ../shared/data/kvasir-seg)")
    p.add_argument("--budget-s", type=float, help="whole check (s; default 480, quick 240)")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every part's ceiling (a starved machine: the tests' CPU form runs every "
        "row whatever the load; with --budget-s to match)",
    )
    p.add_argument("--loader-s", type=float, help="part 5: training time per num_workers (s)")
    p.add_argument("--workers", help="part 5: num_workers values (default 0,2,4; quick 0,2)")
    p.add_argument("--parts", default=",".join(PART_NAMES), help="which parts to run")
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    unknown = [n for n in args.parts.split(",") if n not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PART_NAMES)}")
    if args.budget_s is None:
        args.budget_s = 240.0 if args.quick else 480.0
    if args.loader_s is None:
        args.loader_s = 15.0 if args.quick else 25.0
    if args.workers is None:
        args.workers = "0,2" if args.quick else "0,2,4"
    return args


def main(argv: list[str] | None = None) -> int:
    """0: every part ran (each says ok, partial, skipped or failed); 2: preflight failed;
    130: interrupted."""
    args = parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    c = Check(args)
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _raise_interrupted)
    names = args.parts.split(",")
    rc = 0
    try:
        for name in names:
            part = run_part(c, name)
            if name == "preflight" and part["status"] == "failed":
                print(f"[gpu-check] preflight failed: {part['error']}", file=sys.stderr, flush=True)
                rc = 2
                break
    except Interrupted:
        for name in [n for n in names if n not in c.report["parts"]]:
            c.report["parts"][name] = {
                "status": "skipped",
                "notes": "not run: the check was interrupted",
            }
        c.save()
        rc = 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if rc != 2:
        print(markdown(c.report), flush=True)
    print(f"[gpu-check] wrote {c.out}/part*.json, gpu_check.json and gpu_check.md", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
