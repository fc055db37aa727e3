"""The command line's allocator and process settings: chosen by one variable, applied by the
program alone (never by importing or calling the library), results unchanged, bad values one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medspikeformer import allocator
from medspikeformer.errors import ConfigError

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}


def _clean_env(**extra: str) -> dict[str, str]:
    drop = ("MEDSPIKEFORMER_ALLOCATOR", "LD_PRELOAD", "THP_MEM_ALLOC_ENABLE", "MALLOC_CONF")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, **CPU_ONLY, **extra}


def _run(args: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], env=_clean_env(**extra), capture_output=True, text=True
    )


@pytest.mark.parametrize("value", ["", "auto", "AUTO", " system ", "tcmalloc", "jemalloc"])
def test_requested_reads_the_choices(value: str) -> None:
    expected = value.strip().lower() or "auto"
    assert allocator.requested({allocator.ENV_CHOICE: value}) == expected
    assert allocator.requested({}) == "auto"


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "glibc"])
def test_a_bad_choice_is_one_error_line(value: str) -> None:
    with pytest.raises(
        ConfigError, match="is not one of auto, mimalloc, jemalloc, tcmalloc, system"
    ):
        allocator.requested({allocator.ENV_CHOICE: value})
    out = _run(["-m", "medspikeformer", "list-models"], MEDSPIKEFORMER_ALLOCATOR=value)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: MEDSPIKEFORMER_ALLOCATOR={value!r} is not one of auto, mimalloc, jemalloc, "
        "tcmalloc, system"
    ]


def test_resolve_prefers_a_wheel_copy_and_falls_back_to_system(tmp_path) -> None:
    lib = tmp_path / "cmeel.prefix" / "lib" / "libmimalloc.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    assert allocator.library_path("mimalloc", [str(tmp_path)]) == str(lib)
    assert allocator.resolve("system") == ("system", None)
    name, found = allocator.resolve("auto", [str(tmp_path / "none")])
    assert name in (*allocator.PREFERENCE, "system")
    assert (found is None) == (name == "system")


def test_a_named_allocator_that_is_missing_says_how_to_get_it(monkeypatch) -> None:
    monkeypatch.setattr(allocator, "library_path", lambda name, site_dirs=None: None)
    with pytest.raises(ConfigError, match=r"no jemalloc library found \(pip install"):
        allocator.resolve("jemalloc")
    assert allocator.resolve("auto") == ("system", None)


def test_preload_env_keeps_the_users_settings() -> None:
    env = allocator.preload_env("jemalloc", "/x/libjemalloc.so.2", {"LD_PRELOAD": "/y/a.so"})
    assert env["LD_PRELOAD"] == "/x/libjemalloc.so.2:/y/a.so"
    assert env["MALLOC_CONF"].startswith("oversize_threshold:1")
    assert env[allocator.ENV_ACTIVE] == "jemalloc"
    mine = allocator.preload_env("jemalloc", "/x/j.so", {"MALLOC_CONF": "narenas:1"})
    assert "MALLOC_CONF" not in mine  # the user's value stays


def test_should_reexec_only_once_and_never_over_a_users_preload(tmp_path) -> None:
    assert allocator.should_reexec(CPU_ONLY) == sys.platform.startswith("linux")
    assert not allocator.should_reexec({**CPU_ONLY, allocator.ENV_ACTIVE: "tcmalloc"})
    assert not allocator.should_reexec({**CPU_ONLY, "LD_PRELOAD": "/usr/lib/libjemalloc.so.2"})


def test_cpu_settings_leave_a_users_value_and_gpu_runs_alone(monkeypatch) -> None:
    assert allocator.cpu_settings(CPU_ONLY) == {"THP_MEM_ALLOC_ENABLE": "1"}
    assert allocator.cpu_settings({**CPU_ONLY, "THP_MEM_ALLOC_ENABLE": "0"}) == {}
    monkeypatch.setattr("medspikeformer.runtime.cuda_expected", lambda env=None: True)
    assert allocator.cpu_settings({}) == {}


def test_importing_and_training_change_nothing_in_the_process(tmp_path) -> None:
    """``import medspikeformer`` loads no torch and sets no variable; the library's train() preloads
    nothing (only the program re-executes itself)."""
    code = (
        "import os, sys; before = dict(os.environ); import medspikeformer; "
        "print('torch' in sys.modules, dict(os.environ) == before)"
    )
    out = _run(["-c", code])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]


def test_the_program_runs_under_the_chosen_allocator() -> None:
    """End to end: ``python -m medspikeformer`` re-executes itself under the library ``auto``
    finds (visible in the process's own memory map), once; ``system`` keeps glibc."""
    name, library = allocator.resolve("auto")
    code_maps = "print(open('/proc/self/maps').read())"
    out = _run(["-m", "medspikeformer", "allocator"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"running under: {name}"
    assert "THP_MEM_ALLOC_ENABLE=1" in out.stdout
    plain = _run(["-m", "medspikeformer", "allocator"], MEDSPIKEFORMER_ALLOCATOR="system")
    assert plain.stdout.splitlines()[0] == "running under: system"
    if library is None:
        pytest.skip("no allocator of PREFERENCE installed here (Debian: libtcmalloc-minimal4)")
    maps = _run(["-c", code_maps], LD_PRELOAD=library).stdout
    assert os.path.basename(library).split(".so")[0] in maps
