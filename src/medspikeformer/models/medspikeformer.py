"""MedSpikeFormer (DESIGN.md §1; paper Eq. 10–12) and its ANN twin, from one builder.

Layout inside the network is ``[T, B, C, H, W]``. Per encoder unit i (width C_i = 2^(i−1)·C,
resolution H/2^(i−1)):

    unit 1:  f = SC(BN(conv(x)))                       (PE; the only real-valued conv input)
    unit i:  f = SC(SC'(SC_down(f_e^(i−1))))           (stride-2 LIF→conv→BN, then PE)
    f_e^i = Attn(f) + f                                 (Eq. 10)
    f_s^L = SC(f_e^L),  f_s^i = SC(f_e^i + Up(f_s^(i+1)))  (Eq. 11; SC changes the width)
    Ŷ = mean_T conv1×1(LIF(f_s^1))                      (Eq. 12; K = num_classes channels)

Beyond the paper (model options, docs/architecture.md): ``neuron: ilif`` (the default) puts
integer-valued spikes (counts in {0..``levels``}) wherever a spike enters a synaptic layer, run as
binary events at inference (:mod:`medspikeformer.models.expansion`); ``neuron: lif`` is the
paper's binary LIF (Eq. 1–3), :data:`PAPER_NETWORK`. ``head: real`` takes the logits from the
real-valued f_s^1 (mean over T → conv3×3 → BN → conv1×1, as the authors' released code) instead
of Eq. 12's spike head.

Every conv after the first is preceded by a LIF (spike-driven); additions happen on real values
before that LIF; upsampling is nearest-neighbour on real values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from medspikeformer.attention import (
    INTERACTIONS,
    attention_spec,
    create_attention,
    list_attentions,
    normalise_interactions,
)
from medspikeformer.errors import ConfigError
from medspikeformer.layers import ConvBN, SpikeConv, upsample2x
from medspikeformer.models.base import (
    SegmentationModel,
    check_option_limits,
    pop_multilabel,
    pop_num_classes,
)
from medspikeformer.models.blocks import StageHead, check_head, create_head
from medspikeformer.models.output import SegmentationOutput
from medspikeformer.neurons import check_neuron

#: The attention kinds registered at import (``attention.list_attentions()`` is the live list).
ATTENTIONS = tuple(list_attentions())

PAPER_NETWORK: dict[str, Any] = {"neuron": "lif", "head": "spike"}
"""The options that make the paper's network of the default one (binary LIF, Eq. 1–3; spike head,
Eq. 12): the ``paper`` presets, the rows of the paper's tables and old checkpoints use them."""

DEFAULT_NEURON = "ilif"
"""The default neuron: integer spikes learn faster than the paper's binary LIF at the same cost
in events (docs/results.md, "Integer spikes"); :data:`PAPER_NETWORK` gives the paper's."""

AUTO_CHECKPOINT_ELEMENTS = 4 * 2 * 256 * 256
"""``checkpoint_attention="auto"`` on a CPU recomputes the attention blocks in backward only when
an input has more than T·B·H·W = this many frame pixels (batch 2 at 256² with T = 4): there the
trade was measured (docs/performance.md, "activation checkpointing")."""

TRAINING_BYTES_PER_FRAME_PIXEL = 7_100
"""Peak training memory per frame pixel (T·B·H·W) of a C = 32 network without recomputation: the
measured peak of batch 8 at 256², T = 4 (docs/performance.md), divided by its 2.1 M frame pixels.
On a GPU, ``auto`` compares this estimate (scaled by C / 32) with the device's memory."""

GPU_MEMORY_SHARE = 0.6
"""``auto`` on a GPU recomputes only when the estimate exceeds this share of the device memory
(the rest is left to the teacher, the optimiser and the allocator's slack)."""


def recompute_attention(frame_pixels: int, base_channels: int, device_memory: int | None) -> bool:
    """``checkpoint_attention="auto"``'s decision: on a CPU (``device_memory`` None) above
    :data:`AUTO_CHECKPOINT_ELEMENTS` frame pixels; on a GPU with ``device_memory`` bytes only when
    the network's estimated peak without recomputation would not fit in
    :data:`GPU_MEMORY_SHARE` of it — an 80 GB card trains the paper recipe without the +35 %."""
    if device_memory is None:
        return frame_pixels > AUTO_CHECKPOINT_ELEMENTS
    estimate = TRAINING_BYTES_PER_FRAME_PIXEL * frame_pixels * base_channels / 32
    return estimate > GPU_MEMORY_SHARE * device_memory


def default_config() -> dict[str, Any]:
    """The default MedSpikeFormer configuration (JSON-serialisable)."""
    return {
        "in_channels": 3,
        "base_channels": 32,
        "num_units": 4,
        "timesteps": 4,
        "attention": "sdsa",
        "interactions": list(INTERACTIONS),
        "use_spike_conv": True,
        "spiking": True,
        "head_dim": 32,
        "num_heads": None,
        "n_kv": 1024,
        "neuron": DEFAULT_NEURON,
        "levels": 4,
        "head": "spike",
        "tau": 2.0,
        "v_threshold": 1.0,
        "surrogate": "atan",
        "alpha": None,
        "detach_reset": False,
        "compile_neurons": False,
        "checkpoint_attention": "auto",
        "head_gain": 1.0,
    }


def upgrade_saved_config(config: dict[str, Any]) -> dict[str, Any]:
    """A MedSpikeFormer ``model_config`` saved by an older version, with the options whose
    default has changed since made explicit: a config without ``neuron`` was written before the
    option existed, when every network was the paper's binary LIF."""
    if "neuron" in config:
        return config
    return {**config, "neuron": PAPER_NETWORK["neuron"]}


def _validate(cfg: dict[str, Any]) -> None:
    unknown = sorted(set(cfg) - set(default_config()))
    if unknown:
        raise ConfigError(
            f"unknown MedSpikeFormer option(s) {unknown}; known: {sorted(default_config())}"
        )
    check_neuron(cfg["neuron"])  # one line listing the neurons
    check_head(cfg["head"])
    for key in (
        "in_channels",
        "base_channels",
        "num_units",
        "timesteps",
        "head_dim",
        "n_kv",
        "levels",
    ):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"MedSpikeFormer option {key} must be a positive integer")
    check_option_limits(cfg, "MedSpikeFormer")
    gain = cfg["head_gain"]
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
        raise ConfigError(
            f"MedSpikeFormer option head_gain must be a positive number (got {gain!r})"
        )
    if cfg["checkpoint_attention"] not in (True, False, "auto"):
        raise ConfigError(
            "MedSpikeFormer option checkpoint_attention must be true, false or 'auto' "
            f"(got {cfg['checkpoint_attention']!r})"
        )
    spec = attention_spec(cfg["attention"])  # unknown kind: one line listing the known ones
    if cfg["spiking"] and spec.spiking is False:
        raise ConfigError(
            f"attention={spec.name!r} is real-valued; use it with spiking=False (ANN twin)"
        )
    if not cfg["spiking"] and spec.spiking is True:
        real = [k for k in list_attentions() if attention_spec(k).spiking is not True]
        raise ConfigError(
            f"the ANN twin (spiking=False) takes attention {' or '.join(map(repr, real))}"
        )


@contextlib.contextmanager
def _frozen_bn_stats(module: nn.Module) -> Iterator[None]:
    """Recompute pass of activation checkpointing: BN uses batch statistics as in the first
    pass but does not update its running statistics a second time (momentum 0)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(bns, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


def checkpointed(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``module(x)`` keeping only ``x`` for backward; the block is recomputed in backward.

    Same values and gradients as ``module(x)`` (LIF state is reset on every call and all ops
    are deterministic); BatchNorm running statistics are updated once.

    Under ``torch.compile`` the checkpoint is traced as one region that the compiler recomputes
    in backward from its own graph (the running statistics are written once by the forward graph),
    and Dynamo cannot trace a ``context_fn``: none is passed there.
    """
    if torch.compiler.is_compiling():
        return checkpoint(module, x, use_reentrant=False)
    return checkpoint(
        module,
        x,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), _frozen_bn_stats(module)),
    )


class MedSpikeFormer(SegmentationModel):
    """Spike-driven encoder–decoder transformer for segmentation.

    The :class:`SegmentationModel` contract: ``forward(x [B, C_in, H, W])`` → logits
    ``[B, K, H, W]`` and ``forward_all(x)`` → :class:`SegmentationOutput` (logits + one
    ``[B, K, h_i, w_i]`` stage logit map per encoder unit + attention maps), in every mode;
    ``K = num_classes`` (default 1, binary). H and W must be multiples of
    ``size_divisor = 2^(num_units−1)``. See :func:`default_config` for the options;
    ``spiking=False`` builds the ANN twin (ReLU instead of LIF, softmax attention, T = 1).
    """

    divisor_hint = " (2^(num_units−1))"

    def __init__(self, **config: Any) -> None:
        super().__init__()
        config = dict(config)
        self.num_classes = pop_num_classes(config, "MedSpikeFormer")
        self.multilabel = pop_multilabel(config, "MedSpikeFormer")
        cfg = default_config()
        cfg.update(config)
        if not cfg["spiking"]:
            cfg["timesteps"] = 1  # an ANN sees the same frame at every step: one is enough
        if isinstance(cfg["interactions"], str):
            cfg["interactions"] = [cfg["interactions"]]
        cfg["interactions"] = list(normalise_interactions(cfg["interactions"]))
        _validate(cfg)
        cfg.update(self.label_config())  # empty for binary: configs stay as they were
        self.config = cfg
        self.model_name = "medspikeformer" if cfg["spiking"] else "ann"
        self.in_channels = cfg["in_channels"]
        self.timesteps = cfg["timesteps"]
        self.is_spiking = bool(cfg["spiking"])
        self.size_divisor = 2 ** (cfg["num_units"] - 1)
        neuron = {
            "kind": cfg["neuron"],
            "levels": cfg["levels"],
            "tau": cfg["tau"],
            "v_threshold": cfg["v_threshold"],
            "surrogate": cfg["surrogate"],
            "alpha": cfg["alpha"],
            "detach_reset": cfg["detach_reset"],
            "compile": cfg["compile_neurons"],
        }
        spiking, sc = self.is_spiking, cfg["use_spike_conv"]
        widths = [cfg["base_channels"] * 2**i for i in range(cfg["num_units"])]
        self.widths = widths

        def spike_conv(c_in: int, c_out: int, stride: int = 1) -> SpikeConv:
            return SpikeConv(c_in, c_out, 3, stride, spiking, neuron)

        def pointwise(c_in: int, c_out: int) -> SpikeConv:
            return SpikeConv(c_in, c_out, 1, 1, spiking, neuron)

        self.stem = ConvBN(cfg["in_channels"], widths[0], 3)
        self.down = nn.ModuleList(
            spike_conv(widths[i - 1], widths[i], stride=2) for i in range(1, len(widths))
        )
        # PE conv of units ≥ 2 (unit 1's PE conv is the stem).
        self.pe_conv = nn.ModuleList(spike_conv(c, c) for c in widths[1:])
        self.pe_sc = nn.ModuleList(spike_conv(c, c) if sc else nn.Identity() for c in widths)
        self.attn = nn.ModuleList(self._attention(c, cfg, neuron) for c in widths)
        outs = [widths[0], *widths[:-1]]  # decoder level i outputs the width of level i−1
        self.dec = nn.ModuleList(
            spike_conv(c, o) if sc else pointwise(c, o) for c, o in zip(widths, outs)
        )
        k = self.num_classes
        self.head = create_head(
            cfg["head"], widths[0], spiking, neuron, gain=cfg["head_gain"], num_classes=k
        )
        self.stage_heads = nn.ModuleList(StageHead(c, k) for c in widths)
        self.num_stage_heads = len(self.stage_heads)

    @staticmethod
    def _attention(dim: int, cfg: dict[str, Any], neuron: dict) -> nn.Module:
        """The registered attention ``cfg["attention"]`` for width ``dim`` (see
        ``attention.registry``); it gets the model options its registration names."""
        heads = cfg["num_heads"] or max(1, dim // cfg["head_dim"])
        if not cfg["num_heads"]:  # largest head count ≤ dim / head_dim that divides dim
            heads = max(h for h in range(1, heads + 1) if dim % h == 0)
        spec = attention_spec(cfg["attention"])
        options = {key: cfg[key] for key in spec.options}
        return create_attention(spec.name, dim, heads, neuron, **options)

    def use_checkpoint(self, x: torch.Tensor) -> bool:
        """Whether this forward recomputes its attention blocks in backward (activation
        checkpointing): only when training with autograd on, and for ``"auto"`` only when
        :func:`recompute_attention` says so for this input and device (``x``: ``[B, C, H, W]``)."""
        mode = self.config["checkpoint_attention"]
        if not (mode and self.training and torch.is_grad_enabled()):
            return False
        if mode == "auto":
            b, _, h, w = x.shape
            memory = None
            if x.device.type == "cuda":
                memory = torch.cuda.get_device_properties(x.device).total_memory
            return recompute_attention(
                self.timesteps * b * h * w, self.config["base_channels"], memory
            )
        return True

    def encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Stage I. ``x [B, C_in, H, W]`` → (f_e^i, attention outputs), each ``[T, B, C_i, h, w]``.

        Direct encoding: the stem conv+BN of the (constant) frame is computed once and
        broadcast over T (``expand``, no copy) — identical to feeding the frame T times.
        """
        t = self.timesteps
        recompute = self.use_checkpoint(x)
        f = self.stem(x).unsqueeze(0).expand(t, *x.shape[:1], -1, -1, -1)
        feats, attns = [], []
        for i in range(len(self.widths)):
            if i > 0:
                f = self.pe_conv[i - 1](self.down[i - 1](feats[-1]))
            f = self.pe_sc[i](f)
            if recompute and not isinstance(self.attn[i], nn.Identity):
                a = checkpointed(self.attn[i], f)
            else:
                a = self.attn[i](f)
            f_e = f if isinstance(self.attn[i], nn.Identity) else a + f  # Eq. 10
            feats.append(f_e)
            attns.append(a)
        return feats, attns

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Stage II (Eq. 11) + head (Eq. 12): encoder features → logits ``[B, K, H, W]``."""
        f_s = self.dec[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            f_s = self.dec[i](feats[i] + upsample2x(f_s))
        return self.head(f_s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K, H, W]`` in every mode (no stage heads run)."""
        self.check_input(x)
        feats, _ = self.encode(x)
        return self.decode(feats)

    def forward_all(self, x: torch.Tensor, *, attention: bool = True) -> SegmentationOutput:
        """Logits, stage logits and (with ``attention``) per-stage attention outputs (mean over
        T), in any mode. The trainer passes ``attention=False``: it needs no attention maps."""
        self.check_input(x)
        feats, attns = self.encode(x)
        logits = self.decode(feats)
        stages = [head(f) for head, f in zip(self.stage_heads, feats)]
        has_attn = attention and self.config["attention"] != "none"
        return SegmentationOutput(
            logits=logits,
            stage_logits=stages,
            attention=[a.mean(0) for a in attns] if has_attn else None,
        )

    def twin_config(self) -> dict[str, Any] | None:
        """The ANN twin's options (same input, widths, units, heads; ReLU + softmax attention, or
        no attention when this model has none); ``None`` for the ANN itself."""
        cfg = self.config
        if not cfg["spiking"]:
            return None
        keep = (
            "in_channels",
            "base_channels",
            "num_units",
            "head_dim",
            "num_heads",
            "n_kv",
            "head",
        )
        return {
            **{k: cfg[k] for k in keep},
            **self.label_config(),
            "use_spike_conv": cfg["use_spike_conv"],
            "spiking": False,
            "attention": "none" if cfg["attention"] == "none" else "softmax",
        }


def build_teacher(student: SegmentationModel) -> MedSpikeFormer:
    """The ANN twin of a model (``student.twin_config()``): for a MedSpikeFormer the same
    widths/units/input with ReLU + softmax attention. A model without a twin → ConfigError."""
    twin = student.twin_config()
    if twin is None:
        raise ConfigError(f"model {student.model_name!r} has no ANN teacher twin")
    teacher = MedSpikeFormer(**twin)
    teacher.model_name = "ann"
    return teacher
