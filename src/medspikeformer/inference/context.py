"""What the inference commands read from a checkpoint: the model, its training size and channels,
the typed training config, the run directory it lives in (split file, ``last.pt`` with the
teacher) and the teacher itself.

A checkpoint's ``train_config`` is the resolved training configuration as a dict
(``TrainConfig.to_dict()``); :func:`read_train_config` turns it back into a
:class:`~medspikeformer.engine.config.TrainConfig` (defaults for what is missing), which is what
``InferenceContext.config`` holds and every inference command reads (``config.data.dataset``,
``config.train.threshold`` …); rebuild its data with
:func:`medspikeformer.engine.datasets.dataset_from_config`.
A checkpoint "lives in a run directory" when its folder holds ``split.json`` (written by the
trainer; see docs/training.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medspikeformer.config import TrainConfig, read_known_config
from medspikeformer.data.base import parse_size  # re-exported: the one size parser
from medspikeformer.data.preprocessing import PreprocessingPolicy, training_policy
from medspikeformer.errors import CheckpointError, ConfigError

__all__ = [
    "InferenceContext",
    "load_context",
    "load_pretrained",
    "load_teacher",
    "parse_size",
    "policy_warnings",
    "read_train_config",
]

SPLIT_FILE = "split.json"
LAST_CHECKPOINT = "last.pt"


def read_train_config(saved: Any, where: str = "checkpoint") -> TrainConfig:
    """The typed config of a checkpoint's ``train_config`` dict (empty or missing → defaults).

    Keys this version does not know (a newer or hand-written config) are ignored: inference needs
    only the data and threshold settings. A known key of the wrong type → ``CheckpointError``
    naming ``where`` and the key.
    """
    if not isinstance(saved, dict):
        saved = {}
    try:
        return read_known_config(saved)
    except ConfigError as exc:
        raise CheckpointError(f"{where}: saved training config does not read back: {exc}") from None


@dataclass
class InferenceContext:
    """A loaded checkpoint ready for inference.

    Attributes:
        model: the student in eval mode on ``device``.
        checkpoint: the checkpoint dict (``load_checkpoint``).
        path: the checkpoint file.
        train_size: ``(H, W)`` the model was trained at (``data.size``; default 256).
        in_channels: the model's input channels.
        train_config: the resolved training config dict as saved (may be empty).
        config: the same as a typed :class:`TrainConfig` (defaults where nothing was saved).
        has_config: whether the checkpoint recorded a training config at all (else ``config``
            is all defaults and names no dataset of its own).
        preprocessing: how training turned images into inputs (the checkpoint's
            ``"preprocessing"``; for a checkpoint written before it was recorded, the training
            rule of this package — whole images resized to ``data.size``).
        preprocessing_recorded: whether the checkpoint recorded the policy itself.
    """

    model: nn.Module
    checkpoint: dict[str, Any]
    path: Path
    train_size: tuple[int, int]
    in_channels: int
    train_config: dict[str, Any] = field(default_factory=dict)
    config: TrainConfig = field(default_factory=TrainConfig)
    has_config: bool = False
    preprocessing: PreprocessingPolicy | None = None
    preprocessing_recorded: bool = False

    @property
    def run_dir(self) -> Path | None:
        """The run directory holding this checkpoint, if it is one (has ``split.json``)."""
        folder = self.path.resolve().parent
        return folder if (folder / SPLIT_FILE).is_file() else None

    @property
    def split_file(self) -> Path | None:
        run = self.run_dir
        return run / SPLIT_FILE if run is not None else None

    def info(self) -> dict[str, Any]:
        """Provenance for reports."""
        return {
            "checkpoint": str(self.path),
            "model": self.checkpoint.get("model_name"),
            "epoch": self.checkpoint.get("epoch"),
            "train_size": list(self.train_size),
        }


def load_context(
    path: str | Path,
    device: torch.device | str = "cpu",
    size: Any = None,
    optimize: bool = False,
) -> InferenceContext:
    """Load the checkpoint at ``path`` (safe ``weights_only`` loading) and its training settings.

    Args:
        size: override of the training size (``H`` or ``(H, W)``).
        optimize: the model for inference only
            (:func:`medspikeformer.models.fuse.optimize_for_inference`: BN folded, compiled LIF)
            — what ``predict`` and ``evaluate`` use unless ``--exact``.
    """
    from medspikeformer.engine.checkpoint import load_model

    path = Path(path)
    model, ckpt = load_model(path, map_location=device)
    if optimize:
        from medspikeformer.models.fuse import optimize_for_inference

        model = optimize_for_inference(model)
    train_config = ckpt.get("train_config") or {}
    if not isinstance(train_config, dict):
        train_config = {}
    config = read_train_config(train_config, where=str(path))
    recorded = ckpt.get("preprocessing")
    if recorded is not None:
        policy = PreprocessingPolicy.from_dict(recorded, where=str(path))
    else:  # written before the policy was recorded: training always resized to data.size
        size_saved = parse_size(config.data.size, where=f"{path}: training size")
        policy = training_policy(size_saved, model.in_channels)
    raw_size = size if size is not None else policy.size
    train_size = parse_size(raw_size, where=f"{path}: training size")
    divisor = model.size_divisor
    if train_size[0] % divisor or train_size[1] % divisor:
        raise ConfigError(
            f"size {train_size[0]}×{train_size[1]} is not a multiple of the model's "
            f"size_divisor {divisor}"
        )
    return InferenceContext(
        model=model,
        checkpoint=ckpt,
        path=path,
        train_size=train_size,
        in_channels=model.in_channels,
        train_config=train_config,
        config=config,
        has_config=bool(train_config.get("data")),
        preprocessing=policy,
        preprocessing_recorded=recorded is not None,
    )


def load_pretrained(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """The trained model of the checkpoint at ``path``, in eval mode on ``device`` — the model
    alone (``load_model`` returns ``(model, checkpoint)``; :func:`load_context` everything)."""
    return load_context(path, device=device).model


def policy_warnings(
    policy: PreprocessingPolicy, *, mode: str | None, size: tuple[int, int] | None
) -> list[str]:
    """One message per user override (``--mode``, ``--size``; None = not given) that departs
    from how the model was trained; empty when the overrides agree with ``policy``."""
    trained = f"the model was trained on {policy.describe()}"
    out = []
    if mode is not None and mode != policy.mode:
        what = (
            "windows of the training size over each image at its own resolution"
            if mode == "sliding"
            else "each image resized whole to the training size"
        )
        out.append(f"{trained}; --mode {mode} runs {what} instead, so results may differ")
    if size is not None and tuple(size) != tuple(policy.size):
        out.append(
            f"{trained}; --size {size[0]} {size[1]} feeds the model another scale, so results "
            "may differ"
        )
    return out


def intensity_warnings(policy: PreprocessingPolicy, ct_window: Sequence[float] | None) -> list[str]:
    """One message when ``--ct-window`` (None = not given) departs from the intensity rule the
    model's volumes were trained with (:attr:`PreprocessingPolicy.intensity`)."""
    if ct_window is None or policy.intensity is None:
        return []
    given = (float(ct_window[0]), float(ct_window[1]))
    if policy.fixed_window() == given:
        return []
    if policy.percentile_range() is not None:
        lo, hi = policy.percentile_range()
        trained = f"each volume windowed to its own {lo:g}–{hi:g} percentile range"
    else:
        lo, hi = policy.fixed_window()
        trained = f"volumes windowed to [{lo:g}, {hi:g}]"
    return [
        f"the model was trained on {trained}; --ct-window {given[0]:g} {given[1]:g} feeds it "
        "other intensities, so results may differ"
    ]


def load_teacher(
    ctx: InferenceContext,
    teacher_path: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module | None, str]:
    """The ANN teacher of ``ctx``'s student, or ``(None, reason)`` when there is none.

    Sources, in order: ``teacher_path`` (a checkpoint of the teacher model itself, or a run's
    ``last.pt`` whose ``resume.teacher_state_dict`` is used); else the ``last.pt`` beside the
    student checkpoint. The teacher is ``build_teacher(student)`` with those weights (strict).
    Returns the teacher in eval mode and a description of where it came from.
    """
    from medspikeformer.engine.checkpoint import load_checkpoint, load_state_dict_checked
    from medspikeformer.models import build_teacher

    def teacher_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor] | None:
        for holder in (ckpt.get("resume") or {}, ckpt):
            state = holder.get("teacher_state_dict") if isinstance(holder, dict) else None
            if state:
                return state
        return None

    def build(state: dict[str, torch.Tensor], source: str) -> nn.Module:
        try:
            teacher = build_teacher(ctx.model)
        except (ConfigError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{ctx.path}: model has no ANN teacher twin ({exc})") from None
        load_state_dict_checked(teacher, state, source=source, target=f"the ANN twin of {ctx.path}")
        return teacher.to(device).eval()

    if teacher_path is not None:
        teacher_path = Path(teacher_path)
        ckpt = load_checkpoint(teacher_path)
        state = teacher_state(ckpt)
        if state is not None:
            return build(state, f"{teacher_path} (teacher_state_dict)"), str(teacher_path)
        return build(ckpt["state_dict"], f"{teacher_path} (model {ckpt['model_name']!r})"), str(
            teacher_path
        )
    last = ctx.path.resolve().parent / LAST_CHECKPOINT
    if last.is_file():
        state = teacher_state(ctx.checkpoint) or teacher_state(load_checkpoint(last))
        if state is not None:
            return build(state, f"{last} (teacher_state_dict)"), str(last)
        return None, f"{last} holds no teacher (trained with --teacher none?)"
    state = teacher_state(ctx.checkpoint)
    if state is not None:
        return build(state, f"{ctx.path} (teacher_state_dict)"), str(ctx.path)
    return None, f"no {LAST_CHECKPOINT} beside {ctx.path} and no --teacher given"
