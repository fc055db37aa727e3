"""The training configuration, as the engine sees it: a re-export of :mod:`medspikeformer.config`
(where every option is declared once) plus the one check only the engine can make — the names
in ``train.loggers`` against the engine's logger registry.

Old imports (``from medspikeformer.engine.config import TrainConfig, load_config``) keep working.
"""

from __future__ import annotations

from medspikeformer.config import *  # noqa: F403 - this module is the engine's re-export
from medspikeformer.config import __all__ as _config_all
from medspikeformer.config import validate_config as _validate_declared
from medspikeformer.config.schema import TrainConfig

__all__ = [*_config_all]


def validate_config(config: TrainConfig, *, check_model: bool = True) -> None:
    """:func:`medspikeformer.config.validate_config` plus ``train.loggers`` against the
    registered loggers (``medspikeformer.engine.loggers``)."""
    from medspikeformer.engine.loggers import check_logger_names

    _validate_declared(config, check_model=check_model)
    check_logger_names(config.train.loggers)
