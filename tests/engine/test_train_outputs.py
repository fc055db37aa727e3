"""What a training run leaves besides checkpoints, fine-tuning from a checkpoint, loggers."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import medspikeformer.engine.loggers as loggers_mod
from medspikeformer.cli import main
from medspikeformer.engine import train
from medspikeformer.engine.checkpoint import load_checkpoint
from medspikeformer.engine.config import load_config, validate_config
from medspikeformer.engine.step import Callback
from medspikeformer.errors import CheckpointError, ConfigError

from .helpers import quiet, tiny_config


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("outputs") / "run"
    with warnings.catch_warnings():
        # the trainer once read the loss with float() on a tensor that still required grad
        warnings.filterwarnings("error", message="Converting a tensor with requires_grad")
        train(tiny_config(run), log=quiet)
    return run


def test_train_writes_summary_and_curves(first_run: Path) -> None:
    summary = json.loads((first_run / "summary.json").read_text())
    rows = list(csv.DictReader((first_run / "metrics.csv").open()))
    assert summary["epochs_run"] == 2 == len(rows)
    assert summary["model"] == "medspikeformer" and summary["dataset"] == "synthetic"
    best = max(rows, key=lambda r: float(r["val_miou"]))
    assert summary["best_epoch"] == int(best["epoch"])
    assert summary["best_metrics"]["val_miou"] == pytest.approx(float(best["val_miou"]))
    assert Image.open(first_run / "training_curves.png").size[0] >= 1000


def test_init_from_starts_from_the_checkpoint_weights(first_run: Path, tmp_path: Path) -> None:
    """Fine-tuning at a vanishing learning rate ends where the old run ended (Adam moves each
    weight by about lr per step); without --init-from it ends at fresh random weights."""
    old = load_checkpoint(first_run / "last.pt")["state_dict"]

    def distance(run: Path) -> float:
        new = load_checkpoint(run / "last.pt")["state_dict"]
        keys = [k for k in old if "running_" not in k and "num_batches" not in k]
        return max(float((new[k] - old[k]).abs().max()) for k in keys)

    tuned = {"epochs": 1, "init_from": str(first_run / "last.pt")}
    train(tiny_config(tmp_path / "ft", optim={"lr": 1e-9}, train=tuned), log=quiet)
    train(tiny_config(tmp_path / "fresh", optim={"lr": 1e-9}, train={"epochs": 1}), log=quiet)
    assert distance(tmp_path / "ft") < 1e-6
    assert distance(tmp_path / "fresh") > 1e-3


def test_init_from_cli_and_a_wrong_model(first_run: Path, tmp_path: Path, capsys) -> None:
    from tiny_models import TINY_UNET

    cfg = tiny_config(tmp_path / "u", model={"name": "unet", **TINY_UNET})
    cfg["train"]["init_from"] = str(first_run / "best.pt")
    with pytest.raises(CheckpointError, match="unet"):
        train(cfg, log=quiet)
    missing = tiny_config(tmp_path / "m", train={"init_from": str(tmp_path / "no.pt")})
    with pytest.raises(ConfigError, match=r"train\.init_from"):
        train(missing, log=quiet)


def test_resuming_a_fine_tuned_run_does_not_need_the_source(first_run: Path, tmp_path: Path):
    """--resume takes the weights from the run's own last.pt: the checkpoint it was fine-tuned
    from may be gone by then."""
    import shutil

    source = tmp_path / "source.pt"
    shutil.copy(first_run / "last.pt", source)
    run = tmp_path / "ft"
    train(tiny_config(run, train={"epochs": 1, "init_from": str(source)}), log=quiet)
    source.unlink()
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 2


def test_cli_init_from_flag_reaches_the_config(first_run: Path, tmp_path: Path) -> None:
    import yaml

    run = tmp_path / "cli"
    cfg = tiny_config(run, train={"epochs": 1})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rc = main(["train", "--config", str(path), "--init-from", str(first_run / "best.pt")])
    assert rc == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["init_from"] == str(first_run / "best.pt")


class FakeWriter:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir, self.scalars, self.closed = log_dir, [], False

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_tensorboard_logger_writes_every_epoch(tmp_path: Path, monkeypatch) -> None:
    writers: list[FakeWriter] = []

    def factory(log_dir: Path) -> FakeWriter:
        writers.append(FakeWriter(log_dir))
        return writers[-1]

    monkeypatch.setattr(loggers_mod, "_summary_writer", factory)
    monkeypatch.setitem(
        loggers_mod._LOGGERS, "tensorboard", lambda d: loggers_mod.TensorBoardLogger(d, factory)
    )
    run = tmp_path / "tb"
    train(tiny_config(run, train={"loggers": ["tensorboard"]}), log=quiet)
    (writer,) = writers
    assert writer.log_dir == run / "tensorboard" and writer.closed
    tags = {(tag, step) for tag, _, step in writer.scalars}
    assert {("val/miou", 1), ("val/miou", 2), ("train/total", 2), ("lr", 1)} <= tags


def test_tensorboard_missing_is_one_line(tmp_path: Path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("no tensorboard")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ConfigError, match=r"medspikeformer\[tensorboard\]"):
        loggers_mod._summary_writer(tmp_path)


def test_a_registered_logger_is_a_config_name(tmp_path: Path, monkeypatch) -> None:
    epochs: list[int] = []

    class Mine(Callback):
        def on_epoch_end(self, epoch: int, row: Any) -> None:
            epochs.append(epoch)

    monkeypatch.setitem(loggers_mod._LOGGERS, "mine", lambda run_dir: Mine())
    train(tiny_config(tmp_path / "m", train={"loggers": ["mine"]}), log=quiet)
    assert epochs == [1, 2]
    with pytest.raises(ConfigError, match="unknown logger 'nope'"):
        validate_config(load_config(overrides={"train": {"loggers": ["nope"]}}))


def test_fine_tuning_another_config_names_the_keys_and_leaves_no_folder(
    first_run: Path, tmp_path: Path
) -> None:
    """The error names each differing option with the value that would fit (not two whole
    configs), and the run folder it had created is gone again."""
    cfg = tiny_config(tmp_path / "ft", train={"init_from": str(first_run / "best.pt")})
    cfg["model"] = {**cfg["model"], "timesteps": cfg["model"].get("timesteps", 2) + 1}
    with pytest.raises(CheckpointError) as err:
        train(cfg, log=quiet)
    message = str(err.value)
    assert "timesteps: checkpoint" in message and "--set model.timesteps=" in message
    assert len(message) < 400, message
    assert not (tmp_path / "ft").exists()


def test_a_run_with_compiled_neurons_says_it_compiles_first(tmp_path: Path) -> None:
    """The first batch of a ``compile_neurons: true`` run compiles for tens of seconds: one line
    says so before it (and none for an eager run)."""
    from medspikeformer.engine.trainer import _compiles_neurons
    from medspikeformer.models import create_model
    from tiny_models import TINY_MSF

    assert _compiles_neurons(create_model("medspikeformer", **TINY_MSF, compile_neurons=True))
    assert not _compiles_neurons(create_model("medspikeformer", **TINY_MSF))
    lines: list[str] = []
    train(tiny_config(tmp_path / "e", train={"epochs": 1}), log=lines.append)
    assert not any("compiling the neurons" in line for line in lines)


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(143)])
def test_a_stopped_run_says_how_to_continue(
    stop: BaseException,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C and SIGTERM (the scheduler's time limit) after an epoch: one line with the
    ``--resume`` command, since the finished epochs are in last.pt."""
    import medspikeformer.engine.trainer as trainer_mod

    run = tmp_path / "run"

    def stopped_after_an_epoch(config, **kwargs):
        run.mkdir()
        (run / "last.pt").write_bytes(b"")
        raise stop

    monkeypatch.setattr(trainer_mod, "train", stopped_after_an_epoch)
    if isinstance(stop, KeyboardInterrupt):
        assert main(["train", "--config", "synthetic", "--out", str(run)]) == 130
    else:
        with pytest.raises(SystemExit):
            main(["train", "--config", "synthetic", "--out", str(run)])
    err = capsys.readouterr().err
    assert f"medspikeformer train --resume {run}" in err
