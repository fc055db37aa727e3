"""The model contract every registered model follows: :class:`SegmentationModel`.

Code outside ``models/`` (trainer, inference, profiler, experiments) reads these attributes
directly; a new model subclasses this base, sets the attributes in ``__init__`` and implements
:meth:`SegmentationModel.forward_all` (``forward`` is derived from it unless overridden for speed).

=================  ======================================================================
``model_name``     registry name (``create_model`` sets it to the name it was built under)
``config``         JSON-serialisable constructor options: ``create_model(name, **config)``
                   rebuilds the same architecture
``in_channels``    input channels C_in
``num_classes``    output channels K: 1 = binary (sigmoid), K > 1 = K classes (softmax over the
                   channels, class 0 the background) or K overlapping regions (sigmoid each)
``size_divisor``   H and W of an input must be multiples of it
``timesteps``      simulation steps T (1 for non-spiking models)
``is_spiking``     whether the model computes with spiking neurons
``num_stage_heads`` how many stage logits ``forward_all`` returns (one per encoder unit;
                   0 for a model without stage heads)
=================  ======================================================================

Every attribute has a default on the base class (binary, divisor 1, T = 1, not spiking, no stage
heads) except ``config`` and ``in_channels``, which every model sets. Code that reads a module
that may not be a :class:`SegmentationModel` (the profiler, the spike check) goes through
:func:`module_facts`, not ``getattr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from medspikeformer.errors import ConfigError
from medspikeformer.models.output import SegmentationOutput, head_activation

__all__ = [
    "OPTION_LIMITS",
    "ModuleFacts",
    "SegmentationModel",
    "check_option_limits",
    "module_facts",
    "pop_multilabel",
    "pop_num_classes",
]

#: Upper bounds of the options that set a model's compute or memory (every registered model).
#: A checkpoint is untrusted: ``timesteps`` does not change any weight's shape, so a file of a few
#: kB can otherwise ask for a model whose first forward pass (or BN fold) exhausts memory. The
#: bounds are far above anything trained on one GPU (docs/reliability.md, "Bounds").
OPTION_LIMITS: dict[str, int] = {
    "in_channels": 16,
    "num_classes": 256,
    "base_channels": 512,
    "num_units": 8,
    "num_levels": 8,
    "num_res_units": 8,
    "timesteps": 64,
    "head_dim": 1024,
    "num_heads": 64,
    "n_kv": 65536,
    "levels": 255,  # integer spikes are saved as uint8 for backward
}


def check_option_limits(config: dict[str, Any], model: str) -> None:
    """``ConfigError`` naming ``model`` and the option when an integer option in ``config``
    exceeds its :data:`OPTION_LIMITS` bound; checked before anything is built."""
    for key, limit in OPTION_LIMITS.items():
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            raise ConfigError(
                f"{model} option {key} = {value} exceeds its bound of {limit} "
                "(compute and memory grow with it)"
            )


def pop_num_classes(config: dict[str, Any], model: str) -> int:
    """Remove ``num_classes`` from a model's options and return it (default 1); anything but a
    positive integer → ``ConfigError`` naming ``model``."""
    k = config.pop("num_classes", 1)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"{model} option num_classes must be a positive integer (got {k!r})")
    check_option_limits({"num_classes": k}, model)
    return k


def pop_multilabel(config: dict[str, Any], model: str) -> bool:
    """Remove ``multilabel`` (K overlapping sigmoid regions instead of K softmax classes) from a
    model's options and return it (default false)."""
    value = config.pop("multilabel", False)
    if not isinstance(value, bool):
        raise ConfigError(f"{model} option multilabel must be true or false (got {value!r})")
    return value


class SegmentationModel(nn.Module):
    """Base of every segmentation model of the package.

    * ``forward(x [B, C_in, H, W])`` → logits ``[B, K, H, W]`` in every mode (train and eval),
      ``K = num_classes`` (1 for binary segmentation, the default);
    * ``forward_all(x)`` → :class:`SegmentationOutput` (logits, stage logits — empty for models
      without stage heads — and attention maps or ``None``) in every mode;
    * ``twin_config()`` → the ``create_model("ann", **cfg)`` options of the model's ANN teacher
      twin, or ``None`` when it has none;
    * ``check_input(x)`` raises :class:`~medspikeformer.errors.ConfigError` naming the model.

    Subclasses set the contract attributes (module docstring) before the first forward.
    """

    #: Registry name; ``create_model`` sets it (a model built directly names itself).
    model_name: str = ""
    config: dict[str, Any]
    in_channels: int
    #: Output channels K (1 = binary). A model built with the default leaves it out of ``config``
    #: so that binary configs and checkpoints read as before.
    num_classes: int = 1
    #: K > 1 only: the channels are overlapping regions (sigmoid each), not softmax classes.
    multilabel: bool = False
    size_divisor: int = 1
    timesteps: int = 1
    is_spiking: bool = False
    #: Length of ``forward_all(x).stage_logits`` (one stage map per encoder unit).
    num_stage_heads: int = 0
    #: Appended to the divisibility error after the divisor (e.g. how the divisor arises).
    divisor_hint: str = ""

    @property
    def activation(self) -> str:
        """``"sigmoid"`` (binary, or multi-label regions) or ``"softmax"`` (K > 1 classes)."""
        return head_activation(self.num_classes, self.multilabel)

    def label_config(self) -> dict[str, Any]:
        """``num_classes`` / ``multilabel`` as they belong in ``config`` (left out at their
        defaults, so that binary configs and checkpoints read as before)."""
        out: dict[str, Any] = {}
        if self.num_classes != 1:
            out["num_classes"] = self.num_classes
        if self.multilabel:
            out["multilabel"] = True
        return out

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ConfigError`` unless ``x`` is ``[B, in_channels, H, W]`` with H, W divisible
        by ``size_divisor``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"{self.model_name}: expected input [B, {self.in_channels}, H, W], "
                f"got {list(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise ConfigError(
                f"{self.model_name}: input size {h}×{w} is not divisible by "
                f"{self.size_divisor}{self.divisor_hint}; pad or resize the image"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K, H, W]`` of ``x [B, C_in, H, W]``, in every mode."""
        return self.forward_all(x).logits

    def forward_all(self, x: torch.Tensor, *, attention: bool = True) -> SegmentationOutput:
        """Logits, stage logits and attention maps of ``x [B, C_in, H, W]``, in every mode.

        ``attention=False`` lets a model skip its attention maps (``None``) when a caller needs
        only the logits and stage logits (the trainer).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward_all")

    def twin_config(self) -> dict[str, Any] | None:
        """Options of this model's ANN teacher twin (``create_model("ann", **options)``), or
        ``None`` when it has no twin (the default)."""
        return None


@dataclass(frozen=True)
class ModuleFacts:
    """The contract's facts of any module: a :class:`SegmentationModel`'s own; for a bare
    module (a test double, a traced wrapper) its class name and neutral values."""

    model_name: str
    in_channels: int | None = None
    num_classes: int = 1
    size_divisor: int = 1
    timesteps: int = 1
    #: None: not known (a bare module; the profiler then decides from the neurons it saw).
    is_spiking: bool | None = None
    config: dict[str, Any] = field(default_factory=dict)


def module_facts(module: nn.Module) -> ModuleFacts:
    """:class:`ModuleFacts` of ``module``."""
    if not isinstance(module, SegmentationModel):
        # A bare module (the profiler's documented use: a test double, a user's own network)
        # may declare the same facts as plain attributes; what it leaves out stays neutral.
        def fact(name: str, default: Any) -> Any:
            return getattr(module, name, default)

        in_channels = fact("in_channels", None)
        spiking = fact("is_spiking", None)
        return ModuleFacts(
            model_name=str(fact("model_name", "") or type(module).__name__),
            in_channels=None if in_channels is None else int(in_channels),
            num_classes=int(fact("num_classes", 1)),
            size_divisor=int(fact("size_divisor", 1)),
            timesteps=int(fact("timesteps", 1)),
            is_spiking=None if spiking is None else bool(spiking),
            config=dict(fact("config", {}) or {}),
        )
    return ModuleFacts(
        model_name=module.model_name or type(module).__name__,
        in_channels=module.in_channels,
        num_classes=module.num_classes,
        size_divisor=module.size_divisor,
        timesteps=module.timesteps,
        is_spiking=module.is_spiking,
        config=dict(module.config),
    )
