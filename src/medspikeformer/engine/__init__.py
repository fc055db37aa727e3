"""Training engine: typed config, training loop, checkpoints, distributed helpers, run directories.

Public API::

    from medspikeformer.engine import train, load_config, TrainConfig
    result = train(config)          # -> {"run_dir", "best_metrics", "final_metrics", ...}

    from medspikeformer.engine.checkpoint import save_checkpoint, load_checkpoint, load_model

Heavy submodules are imported lazily so that ``import medspikeformer.engine.checkpoint`` stays cheap.
"""

from __future__ import annotations

from typing import Any

from medspikeformer.engine.checkpoint import (
    export_safetensors,
    load_checkpoint,
    load_model,
    save_checkpoint,
)

__all__ = [
    "TrainConfig",
    "export_safetensors",
    "load_checkpoint",
    "load_config",
    "load_model",
    "save_checkpoint",
    "train",
]


def __getattr__(name: str) -> Any:
    if name == "train":
        from medspikeformer.engine.trainer import train

        return train
    if name in ("TrainConfig", "load_config"):
        from medspikeformer.engine import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
