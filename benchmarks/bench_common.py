"""Shared helpers of the benchmark suite: timing, peak RSS, FLOPs, matmul peak, subprocess runs.

Every benchmark returns *rows*: plain JSON-serialisable dicts with at least ``suite``, ``name``,
``params`` (dict) and ``time_s`` (median seconds, ``None`` when the case could not run) plus
optional ``peak_rss_gb``, ``gflop``, ``mfu``, ``status`` (``"ok"``, ``"skipped"``, ``"failed"``,
``"killed"``) and ``notes``. :mod:`run_all` turns them into one table and a JSON file.

Memory figures come from a fresh process per configuration (:func:`run_isolated`): the child
reports ``ru_maxrss`` (its own peak resident set) and nothing allocated by an earlier case can
inflate it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ROW_MARKER = "@@BENCH-ROW@@ "
DEFAULT_THREADS = 2
Row = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# environment


def set_threads(threads: int = DEFAULT_THREADS) -> None:
    """Pin torch's intra-op threads (and, if still possible, inter-op threads) to ``threads``."""
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel region
        torch.set_num_interop_threads(1)


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (falls back to ``platform.processor()``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What a reader needs to compare tables: CPU, cores, memory, torch, device, date."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
        "allocator": os.environ.get("MEDSPIKEFORMER_ALLOCATOR_ACTIVE", "system"),
        "device": device,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    with contextlib.suppress(OSError, ValueError, IndexError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        info["memory_gb"] = round(int(meminfo[0].split()[1]) / 2**20, 1)
    with contextlib.suppress(OSError):
        info["loadavg_1min"] = float(os.getloadavg()[0])
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def sync(device: str) -> None:
    """Wait for queued device work (no-op on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# measurement


def time_fn(
    fn: Callable[[], Any], warmup: int = 2, repeat: int = 5, device: str = "cpu"
) -> dict[str, Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times; median wall and CPU seconds.

    ``cpu_s`` is the median process CPU time (all threads) per call: on a machine shared with
    other work, ``cpu_s / threads`` is a lower bound of the uncontended wall time.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "time_s": statistics.median(times),
        "min_s": min(times),
        "times_s": [float(f"{t:.6g}") for t in times],
        "cpu_s": float(f"{statistics.median(cpu):.6g}"),
    }


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (GB; Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def current_rss_gb() -> float:
    """Current resident set size of this process (GB), from /proc/self/statm."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


class MemoryWatchdog:
    """Abort this process (exit code 3) when its RSS passes ``limit_gb``.

    The benchmark machine is shared; a configuration that would need more memory than the machine
    has must not take the others down with it. The parent reports such a case as ``killed``.
    """

    EXIT_CODE = 3

    def __init__(self, limit_gb: float | None, interval_s: float = 0.05) -> None:
        self.limit_gb = limit_gb
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = current_rss_gb()
            if self.limit_gb is not None and rss > self.limit_gb:
                sys.stdout.write(
                    ROW_MARKER
                    + json.dumps({"status": "killed", "notes": f"RSS {rss:.1f} GB > limit"})
                    + "\n"
                )
                sys.stdout.flush()
                os._exit(self.EXIT_CODE)

    def __enter__(self) -> MemoryWatchdog:
        if self.limit_gb is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` as counted by :class:`torch.utils.flop_counter.FlopCounterMode`.

    The counter covers matmuls and convolutions (forward and backward), i.e. the dense "useful"
    arithmetic; element-wise work (LIF, BN, adds) is not counted, as is usual for MFU.
    """
    from medspikeformer.profile import flop_counter_mode  # counts CPU fused attention too

    counter = flop_counter_mode()
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak_gflops(
    n: int = 2048, repeat: int = 10, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> dict[str, Any]:
    """Measured dense matmul throughput (GFLOP/s) of ``n×n @ n×n``: the machine's practical peak.

    From the *fastest* of ``repeat`` calls after 3 warm-up calls: a peak is what the machine can
    do, and on a cold 2-core VM the median of the first calls read as low as half of it (67 vs
    133 GFLOP/s on the same machine minutes apart). MFU of every row is its useful FLOPs per
    second divided by this figure.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    timing = time_fn(lambda: a @ b, warmup=3, repeat=repeat, device=device)
    timing["time_s"] = timing["min_s"]
    gflops = 2 * n**3 / timing["time_s"] / 1e9
    per_cpu = 2 * n**3 / timing["cpu_s"] / 1e9 if timing["cpu_s"] > 0 else None
    return {
        "suite": "peak",
        "name": f"matmul {n}x{n} {str(dtype).replace('torch.', '')}",
        "params": {"n": n, "threads": torch.get_num_threads(), "device": device},
        "time_s": timing["time_s"],
        "times_s": timing["times_s"],
        "cpu_s": timing["cpu_s"],
        "gflops": round(gflops, 2),
        "gflop_per_cpu_s": None if per_cpu is None else round(per_cpu, 2),
        "status": "ok",
    }


def add_mfu(row: Row, peak: Row | float | None) -> Row:
    """Fill ``gflops``/``mfu`` (wall clock) and ``mfu_cpu`` (CPU time) in place.

    ``mfu = (gflop / time_s) / peak GFLOP/s``. ``mfu_cpu`` uses CPU seconds on both sides —
    the row's ``gflop / cpu_s`` over the matmul's GFLOP per CPU second — so it does not depend
    on how many other processes share the cores (a shared machine inflates wall time, not the
    arithmetic a CPU second does).
    """
    peak_gflops = peak.get("gflops") if isinstance(peak, dict) else peak
    per_cpu = peak.get("gflop_per_cpu_s") if isinstance(peak, dict) else None
    if row.get("gflop") and row.get("time_s") and peak_gflops:
        achieved = row["gflop"] / row["time_s"]
        row["gflops"] = round(achieved, 2)
        row["mfu"] = round(achieved / peak_gflops, 4)
    if row.get("gflop") and row.get("cpu_s") and per_cpu:
        row["mfu_cpu"] = round(row["gflop"] / row["cpu_s"] / per_cpu, 4)
    return row


def make_row(suite: str, name: str, params: dict[str, Any], **fields: Any) -> Row:
    """A row with the mandatory keys; ``status`` defaults to ``"ok"``."""
    row: Row = {"suite": suite, "name": name, "params": params, "time_s": None, "status": "ok"}
    row.update(fields)
    return row


# ---------------------------------------------------------------------------------------------
# devices and autocast


def autocast(device: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on CPU (CPU numbers are float32)."""
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def quiet_compile_errors() -> Iterator[None]:
    """Let ``torch.compile`` failures surface as exceptions we can turn into a row note."""
    import torch._dynamo

    previous = torch._dynamo.config.suppress_errors
    torch._dynamo.config.suppress_errors = False
    try:
        yield
    finally:
        torch._dynamo.config.suppress_errors = previous


# ---------------------------------------------------------------------------------------------
# isolated runs


def run_isolated(
    module: str,
    func: str,
    kwargs: dict[str, Any],
    timeout_s: float = 900,
    mem_limit_gb: float | None = None,
    threads: int = DEFAULT_THREADS,
    repo: Path | None = None,
    env: dict[str, str] | None = None,
) -> Row:
    """Run ``benchmarks/<module>.py:<func>(**kwargs)`` in a fresh Python and return its row.

    The child pins ``threads``, arms a :class:`MemoryWatchdog` at ``mem_limit_gb``, calls the
    function, adds its own ``peak_rss_gb`` and prints the row after :data:`ROW_MARKER`.
    ``repo``: another checkout of the project (an earlier version, for a side-by-side run): its
    ``benchmarks/`` and ``src/`` run the case instead of this one's. ``env``: variables set in
    the child (an allocator's ``LD_PRELOAD``, say) on top of this process's environment.
    """
    spec = json.dumps(
        {"module": module, "func": func, "kwargs": kwargs, "mem_limit_gb": mem_limit_gb}
    )
    env = {**os.environ, **(env or {})}
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env["MEDSPIKEFORMER_BENCH_THREADS"] = str(threads)
    root = REPO if repo is None else Path(repo).resolve()
    if repo is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root / "benchmarks")])
    cmd = [sys.executable, str(root / "benchmarks" / "bench_common.py"), "--child", spec]
    base = {"suite": module.removeprefix("bench_"), "name": func, "params": kwargs}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=root
        )
    except subprocess.TimeoutExpired:
        return {**base, "time_s": None, "status": "failed", "notes": f"timeout {timeout_s:.0f} s"}
    rows = [
        json.loads(line[len(ROW_MARKER) :])
        for line in proc.stdout.splitlines()
        if line.startswith(ROW_MARKER)
    ]
    if rows:
        row = rows[-1]
        if row.get("status") == "killed":
            return {**base, "time_s": None, **row}
        return row
    if proc.returncode < 0:
        status, note = "killed", f"killed by signal {-proc.returncode} (out of memory?)"
    else:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        status, note = "failed", f"exit {proc.returncode}: {tail[0][:200]}"
    return {**base, "time_s": None, "status": status, "notes": note}


def hold_memory(gb: float, seconds: float = 2.0) -> Row:
    """Allocate and touch ``gb`` GB for ``seconds`` (checks :class:`MemoryWatchdog` end to end)."""
    block = torch.ones(int(gb * 2**30 / 4))
    time.sleep(seconds)
    return make_row(
        "self-test", "hold_memory", {"gb": gb}, time_s=seconds, checksum=float(block[0])
    )


def _child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    set_threads(int(os.environ.get("MEDSPIKEFORMER_BENCH_THREADS", DEFAULT_THREADS)))
    if os.environ.get("MEDSPIKEFORMER_CPU_CACHE") == "1":
        # A checkout that still has the former CPU tensor cache (bench_allocators' "cache" and
        # --baseline runs of such a version): install it as that version's CLI did.
        from medspikeformer.runtime import apply_process_settings

        apply_process_settings()
    sys.path.insert(0, str(BENCH_DIR))
    import importlib

    module = importlib.import_module(spec["module"])
    with MemoryWatchdog(spec.get("mem_limit_gb")):
        row = getattr(module, spec["func"])(**spec["kwargs"])
    row["peak_rss_gb"] = round(peak_rss_gb(), 3)
    sys.stdout.write(ROW_MARKER + json.dumps(row) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child_main(sys.argv[2]))
    print("usage: bench_common.py --child SPEC_JSON (internal; use run_all.py)", file=sys.stderr)
    sys.exit(2)
