"""Resources (issue 6, part 5): huge images never get the process OOM-killed; one writer per run
directory.

The 20 000 × 20 000 test image (400 Mpixel, 1.2 GB as decoded RGB) is a constant-colour PNG
written row by row with zlib (a ~1.2 MB file, made in a few seconds without ever holding the image
in memory). Peak memory of the ``predict`` child is measured exactly with ``os.wait4`` (its
``ru_maxrss``), or while it runs from ``/proc/<pid>/status`` (``VmHWM``). The machine has 24 GB.

* Over ``--max-pixels`` the image is refused from its header, before decoding: one line, exit 2,
  and the child stays small.
* ``--mode resize`` completes on the full image: a 20 000 × 20 000 mask is written with peak memory
  a small multiple of the decoded image (no full-size float map).
* ``--mode sliding`` (the default) works block by block: peak memory stays bounded while it
  runs (checked for a while, then the child is stopped — a CPU needs hours for 400 Mpixel).
* Lock: while a training run writes a directory, a second ``train --out`` on it and a
  ``train --resume`` of it are refused with one line naming the PID; after that run is killed, its
  stale lock is taken over.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from medspikeformer.engine.checkpoint import build_payload, save_checkpoint

from .helpers import REPO, CliResult, assert_user_error, cli_env, run_main, tiny_model

SIDE = 20_000
GB = 1 << 30


def write_constant_png(path: Path, height: int, width: int, rgb: tuple[int, int, int]) -> Path:
    """A constant-colour 8-bit RGB PNG, streamed row by row (memory O(width))."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width  # filter type 0 + pixels
    comp = zlib.compressobj(9)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        parts = []
        for _ in range(height):
            parts.append(comp.compress(row))
        parts.append(comp.flush())
        fh.write(chunk(b"IDAT", b"".join(parts)))
        fh.write(chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    return write_constant_png(path, SIDE, SIDE, (180, 90, 60))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose training size is 64 (the sliding window)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    model = tiny_model()
    model.eval()
    return save_checkpoint(
        path,
        build_payload(model, train_config={"data": {"dataset": "synthetic", "size": 64}}),
    )


def vm_hwm(pid: int) -> int:
    """Peak resident memory (bytes) of a running process."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# Fork + exec the command from this small process, wait for it, write its ru_maxrss (kB) and end
# the way the command ended (exit code, or the same signal).
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):  # die the same way, so that an OOM kill still reads as one
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(
    args: list[object], tmp_path: Path, stop_after: float | None = None
) -> tuple[CliResult, int, bool]:
    """Run ``python -m medspikeformer ARGS``; returns (result, peak RSS bytes, was_stopped).

    With ``stop_after`` the child is stopped (SIGKILL) after that many seconds if still running;
    the peak is then the last ``VmHWM`` read. Otherwise the command's own ``ru_maxrss``, measured
    by a small launcher process (see ``_LAUNCHER``).
    """
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    rss_file = str(tmp_path / "child_maxrss_kb.txt")
    with open(out, "w") as fo, open(err, "w") as fe:
        # Through a small launcher: a child's ru_maxrss includes the RSS it inherits at fork, so a
        # child forked straight from a grown pytest worker would report the worker's size.
        command = [sys.executable, "-m", "medspikeformer", *map(str, args)]
        if stop_after is None:  # the stop path polls VmHWM (per process image) and kills it
            command = [sys.executable, "-c", _LAUNCHER, rss_file, *command]
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=cli_env(),
            stdout=fo,
            stderr=fe,
        )
    stopped, peak = False, 0
    if stop_after is not None:
        deadline = time.monotonic() + stop_after
        while time.monotonic() < deadline:
            try:
                peak = max(peak, vm_hwm(proc.pid))
            except (FileNotFoundError, ProcessLookupError):
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            peak = max(peak, vm_hwm(proc.pid))
            os.kill(proc.pid, signal.SIGKILL)
            stopped = True
    _, status, _usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    child = Path(rss_file).read_text().strip() if Path(rss_file).is_file() else ""
    if child:
        peak = max(peak, int(child) * 1024)
    result = CliResult(proc.returncode, out.read_text(), err.read_text())
    return result, peak, stopped


def test_huge_image_over_the_limit_is_refused_before_decoding(
    tmp_path: Path, huge_png: Path, checkpoint: Path
) -> None:
    """400 Mpixel with ``--max-pixels 100000000``: one line naming the file, small peak RSS."""
    res, peak, _ = run_measured(
        ["predict", checkpoint, huge_png, "--out", tmp_path / "o", "--max-pixels", 100_000_000],
        tmp_path,
    )
    assert_user_error(res, str(huge_png), "Mpixel")
    assert peak < 1.0 * GB, f"peak RSS {peak / GB:.2f} GB: the image was decoded"
    assert not list((tmp_path / "o").glob("*_mask.png"))


def test_image_larger_than_memory_is_refused_not_oom_killed(
    tmp_path: Path, checkpoint: Path
) -> None:
    """An image whose header claims more pixels than memory can hold (even under the pixel
    limit, raised here) is refused with one line — never decoded, never OOM-killed."""
    path = write_constant_png(tmp_path / "claims.png", 1, 1, (0, 0, 0))
    data = bytearray(path.read_bytes())
    # Rewrite IHDR to claim 100 000 × 100 000 (≈ 60 GB decoded RGB + mask); fix its CRC.
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    res, peak, _ = run_measured(
        ["predict", checkpoint, path, "--out", tmp_path / "o", "--max-pixels", 10**11],
        tmp_path,
    )
    assert_user_error(res, str(path), "memory")
    assert peak < 1.0 * GB


@pytest.mark.slow
def test_huge_image_resize_mode_completes_with_bounded_memory(
    tmp_path: Path, huge_png: Path, checkpoint: Path
) -> None:
    """``--mode resize`` on 20 000 × 20 000: a full-size mask, peak RSS a few GB (the decoded
    image is 1.2 GB; a float32 map alone would be 1.6 GB per channel)."""
    res, peak, _ = run_measured(
        ["predict", checkpoint, huge_png, "--out", tmp_path / "o", "--mode", "resize"], tmp_path
    )
    assert res.returncode == 0, res.stderr
    mask = tmp_path / "o" / "huge_mask.png"
    with open(mask, "rb") as fh:  # the PNG header (Pillow's bomb guard refuses 400 Mpixel)
        head = fh.read(26)
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    assert (width, height, depth, colour) == (SIDE, SIDE, 8, 0)  # 8-bit grey
    assert peak < 6 * GB, f"peak RSS {peak / GB:.2f} GB"
    print(f"\npredict --mode resize {SIDE}x{SIDE}: peak RSS {peak / GB:.2f} GB")


@pytest.mark.slow
def test_huge_image_sliding_mode_memory_stays_bounded(
    tmp_path: Path, huge_png: Path, checkpoint: Path
) -> None:
    """Sliding windows on 20 000 × 20 000, watched for 120 s: peak RSS stays below 6 GB
    (whole-image MONAI sliding windows would need ≥ 3 full-size float maps, > 5 GB, plus the
    float input, 4.8 GB)."""
    res, peak, stopped = run_measured(
        [
            "predict",
            checkpoint,
            huge_png,
            "--out",
            tmp_path / "o",
            "--no-progress",
            "--mode",
            "sliding",
        ],
        tmp_path,
        stop_after=120,
    )
    assert "Traceback" not in res.stderr, res.stderr
    assert stopped or res.returncode == 0, res.stderr
    assert peak < 6 * GB, f"peak RSS {peak / GB:.2f} GB"
    print(f"\npredict --mode sliding {SIDE}x{SIDE}: peak RSS {peak / GB:.2f} GB in 120 s")


# ----------------------------------------------------------------------------- lock file


def test_lock_file_stops_a_second_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live run holds RUN_DIR/.lock: a second ``train --out RUN_DIR`` and a ``--resume`` are
    refused (one line naming the PID, exit 2) and change nothing; once the holder is SIGKILLed,
    its stale lock is taken over by ``--resume``."""
    from .test_kill_resume import HOOKED_CLI, TINY_RUN, write_config

    config = write_config(tmp_path)
    run_dir = tmp_path / "run"
    events = tmp_path / "events.txt"
    holder = subprocess.Popen(
        [sys.executable, str(HOOKED_CLI), "train", "--config", str(config), "--out", str(run_dir)],
        cwd=REPO,
        env=cli_env(MSF_HOOK_EVENTS=str(events), MSF_HOOK_PAUSE="last.pt:2:before-rename"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (
            events.exists() and "paused" in events.read_text().split("\n")
        ):
            assert holder.poll() is None, "the lock holder ended early"
            time.sleep(0.05)
        lock = run_dir / ".lock"
        assert lock.exists()
        before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
        second = run_main(["train", "--config", config, "--out", run_dir], capsys)
        assert_user_error(second, str(run_dir), str(holder.pid), "in use")
        resume = run_main(["train", "--resume", run_dir], capsys)
        assert_user_error(resume, str(run_dir), str(holder.pid))
        after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
        assert after == before, "a refused run changed the run directory"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert TINY_RUN["train"]["epochs"] >= 2
    with pytest.warns(UserWarning, match=f"stale lock of process {holder.pid}"):
        res = run_main(["train", "--resume", run_dir, "--no-progress"], capsys)
    assert res.returncode == 0, res.stderr
    assert not (run_dir / ".lock").exists()


def test_tiff_claiming_a_huge_page_is_refused_before_allocating(tmp_path: Path) -> None:
    """A 1 kB deflate TIFF whose header claims 20 000 × 20 000 RGB (1.2 GB) in a dataset:
    ``data check`` reports it on one line without allocating the image (child peak RSS < 1 GB;
    unchecked, tifffile allocates the whole page before finding the data missing: 1.35 GB here,
    10.8 GB for a 60 000² claim). The reader checks the header against Pillow's bomb limit."""
    import io

    import numpy as np
    import tifffile

    from .badfiles import binary_mask, make_good_folder, save_png

    root = make_good_folder(tmp_path / "ds", n=1)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((32, 40, 3), np.uint8), photometric="rgb", compression="zlib")
    data = bytearray(buf.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tags = tif.pages[0].tags
        offsets = [tags[name].valueoffset for name in ("ImageLength", "ImageWidth")]
    for off in offsets:
        data[off : off + 4] = struct.pack("<I", 20_000)
    path = tmp_path / "ds" / "images" / "claims.tif"
    path.write_bytes(bytes(data))
    save_png(root / "masks" / "claims.png", binary_mask())
    res, peak, _ = run_measured(["data", "check", "folder", "--root", root], tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
    lines = [line for line in res.stdout.splitlines() if str(path) in line]
    assert len(lines) == 1 and "Mpixel" in lines[0], res.stdout
    assert peak < 1.0 * GB, f"peak RSS {peak / GB:.2f} GB: the page was allocated"
