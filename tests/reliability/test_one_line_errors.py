"""Tracebacks and hangs where one line belongs (issue 16, cases 7–12)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from medspikeformer.engine import checkpoint as ckpt_mod
from medspikeformer.engine import run_dir as run_dir_mod
from medspikeformer.engine import train
from medspikeformer.engine.checkpoint import load_model
from medspikeformer.engine.config import load_config, read_yaml, validate_config
from medspikeformer.errors import CheckpointError, ConfigError
from tiny_models import TINY_MSF

from .helpers import (
    assert_user_error,
    run_cli,
    run_cli_as_nobody,
    run_main,
    tiny_checkpoint,
)


def _quiet(_msg: str) -> None:
    pass


def _tiny(out: Path, **data: object) -> dict:
    return {
        "model": {"name": "medspikeformer", **TINY_MSF},
        "data": {
            "dataset": "synthetic",
            "size": 32,
            "split_spec": "50/25/25",
            "augment": "none",
            "options": {"num_samples": 8},
            **data,
        },
        "train": {"epochs": 1, "batch_size": 4, "progress": False},
        "out": str(out),
    }


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


# ----------------------------------------------------------------------------------- case 7
def _folder(tmp_path: Path) -> dict:
    """Data options of a small folder dataset (cacheable, unlike the synthetic set)."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(8):
        Image.fromarray(np.full((32, 32, 3), 20 * i, np.uint8)).save(root / "images" / f"c{i}.png")
        m = np.zeros((32, 32), np.uint8)
        m[4:12, 4:12] = 255
        Image.fromarray(m).save(root / "masks" / f"c{i}.png")
    return {"dataset": "folder", "root": str(root), "options": {}}


def test_unwritable_cache_folder_warns_and_trains_without_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    cfg = _tiny(tmp_path / "run", **_folder(tmp_path), cache_dir=str(blocker / "cache"))
    with pytest.warns(UserWarning, match="cannot write the data cache"):
        result = train(cfg, log=_quiet)
    assert result["epochs_run"] == 1


def test_unwritable_default_cache_under_xdg_warns_and_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    monkeypatch.delenv("MEDSPIKEFORMER_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "xdg"))
    cfg = _tiny(tmp_path / "run", **_folder(tmp_path), cache_dir=None)
    with pytest.warns(UserWarning, match="cannot write the data cache"):
        result = train(cfg, log=_quiet)
    assert result["epochs_run"] == 1


# ----------------------------------------------------------------------------------- case 8
def _world_readable_dir() -> Path:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="msf-nobody-", dir="/tmp"))
    root.chmod(0o755)
    return root


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="needs root to become nobody")
@pytest.mark.parametrize("command", ["export", "explain"])
def test_read_only_folder_for_a_normal_user(ckpt: Path, command: str) -> None:
    root = _world_readable_dir()
    try:
        model = root / "tiny.pt"
        model.write_bytes(ckpt.read_bytes())
        model.chmod(0o644)
        img = root / "a.png"
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
        img.chmod(0o644)
        ro = root / "ro"
        ro.mkdir(mode=0o555)
        ro.chmod(0o555)
        work = root / "work"
        work.mkdir(mode=0o777)
        work.chmod(0o777)
        if command == "export":
            args = ["export", model, "--onnx", ro / "m.onnx", "--size", "32", "--no-verify"]
        else:
            args = ["explain", model, img, "--out", ro / "h.png", "--no-teacher"]
        try:
            res = run_cli_as_nobody(args, cwd=work)
        except PermissionError:
            pytest.skip("user nobody cannot run this Python (it lives in a private folder)")
        if "ModuleNotFoundError" in res.stderr or "Permission denied: '/" in res.stderr:
            pytest.skip("the package is not readable by user nobody here")
        assert_user_error(res, str(ro))
        assert list(ro.iterdir()) == []
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def test_explain_into_an_unwritable_place_gives_one_line(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    res = run_main(["explain", ckpt, img, "--out", blocker / "h.png", "--no-teacher"], capsys)
    assert_user_error(res, str(blocker))


# ----------------------------------------------------------------------------------- case 9
@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WORLD_SIZE": "abc"}, "WORLD_SIZE"),
        ({"WORLD_SIZE": "2"}, "RANK"),
        (
            {"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"},
            "RANK=2",
        ),
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR"),
    ],
)
def test_bad_distributed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=needle):
        train(_tiny(tmp_path / "run"), log=_quiet)


@pytest.mark.parametrize(
    ("section", "values", "needle"),
    [
        ("optim", {"lr": float("nan")}, "optim.lr"),
        ("optim", {"lr": float("inf")}, "optim.lr"),
        ("optim", {"betas": [1.5, 0.999]}, "optim.betas"),
        ("optim", {"weight_decay": float("nan")}, "optim.weight_decay"),
        ("data", {"size": 40000}, "data.size"),
    ],
)
def test_invalid_numbers_in_the_config(
    tmp_path: Path, section: str, values: dict, needle: str
) -> None:
    cfg = _tiny(tmp_path / "run")
    cfg[section] = {**cfg.get(section, {}), **values}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        validate_config(load_config(path), check_model=False)


def test_yaml_nan_lr_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = _tiny(tmp_path / "run")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg).replace("size: 32", "size: 32") + "optim: {lr: .nan}\n")
    res = run_main(["train", "--config", path], capsys)
    assert_user_error(res, "optim.lr", "finite")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_non_utf8_config(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("data: {root: 'caf\xe9'}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml.*UTF-8"):
        read_yaml(path)


def test_evaluate_batch_size_zero(ckpt: Path, capsys: pytest.CaptureFixture) -> None:
    res = run_main(["evaluate", ckpt, "--batch-size", "0"], capsys)
    assert_user_error(res, "--batch-size")


def test_export_opset_out_of_range(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("onnx")
    res = run_main(["export", ckpt, "--onnx", tmp_path / "m.onnx", "--opset", "5"], capsys)
    assert_user_error(res, "--opset 5")
    assert not (tmp_path / "m.onnx").exists()


def test_predict_size_too_large(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    res = run_main(["predict", ckpt, img, "--out", tmp_path / "o", "--size", "40000"], capsys)
    assert_user_error(res, "40000", "too large")


def test_state_dict_with_a_non_tensor_value(ckpt: Path, tmp_path: Path) -> None:
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    key = next(iter(data["state_dict"]))
    data["state_dict"][key] = 3.5
    bad = tmp_path / "bad.pt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match=rf"bad\.pt.*{key}.*not a tensor"):
        load_model(bad)


def test_broken_resume_section_gives_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_tiny(run), log=_quiet)
    data = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    del data["resume"]["loop"]
    data["resume"]["optimizer"] = {"state": {}, "param_groups": "nonsense"}
    torch.save(data, run / "last.pt")
    cfg = _tiny(run)
    cfg["train"]["epochs"] = 2
    with pytest.raises(CheckpointError, match=r"last\.pt.*broken resume section"):
        train(cfg, resume=run, log=_quiet)


# ----------------------------------------------------------------------------------- case 10
def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    bomb = "data:\n  cache_dir:\n" + "\n".join("    " + line for line in lines) + "\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    assert len(bomb) < 2000
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"bomb\.yaml.*alias"):
        load_config(path)
    assert time.monotonic() - t0 < 30  # a generous bound: once it never finished


def test_alias_bomb_through_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text("data:\n  cache_dir: &a [x, x]\n  options: {k: *a}\n")
    res = run_cli(["train", "--config", path, "--out", tmp_path / "run"], timeout=120)
    assert_user_error(res, "bomb.yaml", "alias")
    assert not (tmp_path / "run" / "config.yaml").exists()


# ----------------------------------------------------------------------------------- case 11
def test_huge_model_config_is_refused_before_the_model_is_built(ckpt: Path, tmp_path: Path) -> None:
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    # within OPTION_LIMITS (2048 is now refused by its bound), still far too big to build
    data["model_config"]["base_channels"] = 512
    bad = tmp_path / "huge.pt"
    torch.save(data, bad)
    built: list[str] = []
    import medspikeformer

    real = medspikeformer.create_model

    def spy(name: str, **cfg: object):
        built.append(str(torch.empty(0).device))
        return real(name, **cfg)

    medspikeformer.create_model = spy
    try:
        with pytest.raises(CheckpointError, match=r"huge\.pt.*does not fit"):
            load_model(bad)
    finally:
        medspikeformer.create_model = real
    assert built == ["meta"]  # built once without memory, never for real


def test_compressed_checkpoint_entries_are_refused(ckpt: Path, tmp_path: Path) -> None:
    import zipfile

    bad = tmp_path / "deflated.pt"
    with zipfile.ZipFile(ckpt) as src, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(CheckpointError, match=r"deflated\.pt.*compressed"):
        ckpt_mod.load_checkpoint(bad)


def test_oversized_model_config_is_refused(ckpt: Path, tmp_path: Path) -> None:
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    data["model_config"]["junk"] = {f"k{i}": i for i in range(1000)}
    bad = tmp_path / "cfg.pt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match=r"cfg\.pt.*model_config\.junk"):
        ckpt_mod.load_checkpoint(bad)


# ----------------------------------------------------------------------------------- case 12
@pytest.mark.filterwarnings("ignore:.*stale lock")
def test_only_one_process_takes_over_a_stale_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".lock"
    lock.write_text(f'{{"pid": {dead.pid}, "host": null}}')
    both_checked = threading.Barrier(2, timeout=2)
    real_alive = run_dir_mod.pid_alive

    order: list[int] = []
    order_lock = threading.Lock()

    def slow_alive(pid: int) -> bool:
        # Both contenders find the stale lock at the same time (the window of the race); the
        # second one goes on a little later, after the first has taken the lock over.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait()
        with order_lock:
            order.append(pid)
            late = len(order) > 1
        if late:
            time.sleep(0.3)
        return real_alive(pid)

    monkeypatch.setattr(run_dir_mod, "pid_alive", slow_alive)
    outcomes: list[str] = []
    locks: list[run_dir_mod.RunLock] = []

    def contend() -> None:
        lk = run_dir_mod.RunLock(tmp_path)
        try:
            lk.acquire()
            locks.append(lk)
            outcomes.append("held")
        except ConfigError:
            outcomes.append("refused")

    threads = [threading.Thread(target=contend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for lk in locks:
        lk.release()
    assert sorted(outcomes) == ["held", "refused"], outcomes


def test_unknown_keys_of_any_kind_give_one_line(tmp_path: Path) -> None:
    """Found by the config fuzzer: a key holding a newline split the error over two lines."""
    for text in ['data: {"a\\nb": 1}\n', "data: {1: x, b: y}\n", "{null: 1}\n"]:
        path = tmp_path / "k.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert "\n" not in str(info.value), str(info.value)
