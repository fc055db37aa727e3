"""Training loggers beside ``metrics.csv``: a small registry of :class:`Callback` factories.

``train.loggers: [tensorboard]`` (CLI ``--logger tensorboard``) adds the registered logger to a
run (rank 0 only). A logger is a :class:`~medspikeformer.engine.callbacks.Callback` built from the run
directory; register another (Weights & Biases, MLflow, …) from outside::

    from medspikeformer.engine.loggers import register_logger

    @register_logger("mine")
    def mine(run_dir):            # -> Callback
        return MyCallback(run_dir)

or pass callbacks directly: ``train(config, callbacks=[MyCallback()])``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from medspikeformer.engine.callbacks import Callback
from medspikeformer.errors import ConfigError

__all__ = [
    "TensorBoardLogger",
    "build_loggers",
    "check_logger_names",
    "list_loggers",
    "register_logger",
]

LoggerFactory = Callable[[Path], Callback]
_LOGGERS: dict[str, LoggerFactory] = {}


def register_logger(name: str) -> Callable[[LoggerFactory], LoggerFactory]:
    """Decorator: ``factory(run_dir) -> Callback`` becomes ``train.loggers: [name]``."""

    def wrap(factory: LoggerFactory) -> LoggerFactory:
        _LOGGERS[name] = factory
        return factory

    return wrap


def list_loggers() -> list[str]:
    return sorted(_LOGGERS)


def check_logger_names(names: Iterable[str]) -> None:
    """``train.loggers`` against the registry: an unknown name → ConfigError listing the known."""
    unknown = [n for n in names if n not in _LOGGERS]
    if unknown:
        raise ConfigError(
            f"config value train.loggers: unknown logger {unknown[0]!r} "
            f"(known: {', '.join(list_loggers())})"
        )


def build_loggers(names: Iterable[str], run_dir: Path) -> list[Callback]:
    """One callback per name (unknown → ConfigError listing the known ones)."""
    out = []
    for name in names:
        if name not in _LOGGERS:
            raise ConfigError(f"unknown logger {name!r} (known: {', '.join(list_loggers())})")
        out.append(_LOGGERS[name](Path(run_dir)))
    return out


def _summary_writer(log_dir: Path) -> Any:
    """``torch.utils.tensorboard.SummaryWriter`` (needs the ``tensorboard`` extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "logger 'tensorboard' needs the tensorboard package: "
            "pip install 'medspikeformer[tensorboard]'"
        ) from None
    return SummaryWriter(log_dir=str(log_dir))


class TensorBoardLogger(Callback):
    """Every numeric column of the epoch's ``metrics.csv`` row as a scalar (tag = the column,
    ``train/…``, ``val/…`` or ``lr``) in ``RUN_DIR/tensorboard/``; ``tensorboard --logdir RUN_DIR``."""

    def __init__(self, run_dir: Path, writer_factory: Callable[[Path], Any] = _summary_writer):
        self.writer = writer_factory(Path(run_dir) / "tensorboard")

    @staticmethod
    def tag(column: str) -> str:
        for prefix in ("train_", "val_"):
            if column.startswith(prefix):
                return f"{prefix[:-1]}/{column[len(prefix) :]}"
        return column

    def on_epoch_end(self, epoch: int, row: Mapping[str, Any]) -> None:
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and value == value:
                self.writer.add_scalar(self.tag(key), float(value), epoch)
        self.writer.flush()

    def on_train_end(self, summary: Mapping[str, Any]) -> None:
        self.writer.close()


@register_logger("tensorboard")
def tensorboard(run_dir: Path) -> Callback:
    return TensorBoardLogger(run_dir)
