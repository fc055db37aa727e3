"""Training engine: typed config, training loop, checkpoints, distributed helpers, run directories.

Public API::

    from medspikeformer.engine import train, load_config, TrainConfig
    result = train(config)          # -> {"run_dir", "best_metrics", "final_metrics", ...}

    from medspikeformer.engine import TrainingStep, run_steps, Callback
    step = TrainingStep.from_config(config)   # the real step of `medspikeformer train`
    terms = step(batch)                        # {"bce", "dice", ..., "total"} device tensors
    run_steps(config, batches)                 # the same over any iterable of batches
    train(config, callbacks=[MyCallback()])    # hooks: engine/callbacks.py
    default_callbacks()                        # the built-in bookkeeping, replaceable

    from medspikeformer.engine import dataset_from_config
    ds = dataset_from_config(config, "test")   # a run's split, as the trainer built it

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
    "Callback",
    "TrainConfig",
    "TrainingStep",
    "dataset_from_config",
    "default_callbacks",
    "export_safetensors",
    "load_checkpoint",
    "load_config",
    "load_model",
    "run_steps",
    "save_checkpoint",
    "train",
]


def __getattr__(name: str) -> Any:
    if name == "train":
        from medspikeformer.engine.trainer import train

        return train
    if name == "Callback":
        from medspikeformer.engine.callbacks import Callback

        return Callback
    if name == "default_callbacks":
        from medspikeformer.engine.builtin_callbacks import default_callbacks

        return default_callbacks
    if name in ("TrainingStep", "run_steps"):
        from medspikeformer.engine import step

        return getattr(step, name)
    if name == "dataset_from_config":
        from medspikeformer.engine.datasets import dataset_from_config

        return dataset_from_config
    if name in ("TrainConfig", "load_config"):
        from medspikeformer.engine import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
