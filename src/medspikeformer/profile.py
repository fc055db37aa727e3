"""Inference profile of a model: parameters, FLOPs/MACs, firing rates, SOPs and energy.

Conventions (also in ``docs/metrics.md``):

* **What is counted.** One eval-mode forward pass (``model.eval()``, ``no_grad``) on a random
  ``[batch, C_in, H, W]`` input drawn from a fixed seed. Only modules that actually run in that
  pass count: the stage mask heads (training only) and a teacher never run, so neither their
  parameters nor their operations are included. The excluded parameter-holding modules are listed.
* **FLOPs** come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts
  **2 FLOPs per multiply-accumulate** (convolutions, matrix products, attention). ``MACs = FLOPs/2``
  (the unit thop and the SNN energy literature call "FLOPs"). Element-wise ops, BN and LIF updates
  are not counted. The time dimension is folded into the batch inside the network, so the counts
  cover all ``T`` timesteps; ``*_per_timestep`` is the total divided by ``T`` (an average: the
  stem of a direct-encoding SNN sees the same frame at every step and may be computed once).
* **Firing rate** of a spiking layer (every :class:`~medspikeformer.neurons.LIFNeuron`): mean of its
  output spikes over all timesteps, images and elements.
* **Synaptic layers** (``Conv*d``, ``ConvTranspose*d``, ``Linear``): a forward pre-hook looks at the
  input. If it holds spikes (non-negative integers: 0/1 or spike counts), the layer is
  *spike-driven*: its input firing rate ``fr`` is the mean of the input and
  ``SOPs = fr × MACs``. The MACs already include the ``T`` timesteps, so this equals the usual
  ``fr × T × FLOPs_per_timestep`` of the SNN literature. Otherwise (real-valued input, e.g. the
  first conv seeing the image) the layer is charged as MACs.
* **Matrix products outside those modules** (attention written with ``@`` / ``matmul``: the
  ``aten.mm``/``bmm``/``addmm``/``baddbmm`` calls) are traced too, by a dispatch mode, and listed
  under their module with type ``matmul``. In ``A·B`` with a spike operand, each spike of ``A`` costs
  one accumulate per column of ``B`` (and symmetrically), so ``SOPs = fr × MACs`` with ``fr`` the
  firing rate of the spike operand (the sparser one when both are spikes). A product with no spike
  operand is charged as MACs.
* **Energy (45 nm)**: ``E = E_MAC × MACs(real-valued) + E_AC × ΣSOPs`` with ``E_MAC = 4.6 pJ``,
  ``E_AC = 0.9 pJ``. MACs (not FLOPs) are multiplied by ``E_MAC``, as in the field. Counted
  operations that fall in neither group (e.g. ``scaled_dot_product_attention``) are charged at
  ``E_MAC`` and reported apart as ``other_macs``. For an ANN (``model.is_spiking`` false)
  ``E = E_MAC × all MACs``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from medspikeformer.analysis.spike_check import SYNAPTIC_TYPES
from medspikeformer.errors import ConfigError

__all__ = [
    "E_AC_PJ",
    "E_MAC_PJ",
    "SYNAPTIC_TYPES",
    "LayerProfile",
    "NeuronProfile",
    "ProfileReport",
    "energy_pj",
    "profile_model",
    "synaptic_operations",
]

#: Energy of one multiply-accumulate, 32-bit float, 45 nm (Horowitz, ISSCC 2014), in pJ.
E_MAC_PJ = 4.6
#: Energy of one accumulate (a synaptic operation on a spike), 45 nm, in pJ.
E_AC_PJ = 0.9


def synaptic_operations(firing_rate: float, macs: float) -> float:
    """``SOPs = fr × MACs`` of one synaptic layer; ``macs`` covers all ``T`` timesteps
    (equivalently ``fr × T × MACs_per_timestep``)."""
    return float(firing_rate) * float(macs)


def energy_pj(mac_ops: float, sops: float, e_mac: float = E_MAC_PJ, e_ac: float = E_AC_PJ) -> float:
    """``E = E_MAC × MACs + E_AC × SOPs`` in picojoules."""
    return e_mac * float(mac_ops) + e_ac * float(sops)


@dataclass
class LayerProfile:
    """One synaptic (conv / linear) layer of the inference pass."""

    name: str
    kind: str
    spike_input: bool
    input_firing_rate: float | None  # None for a real-valued input
    calls: int
    flops: int
    macs: int
    sops: float  # 0 for a real-valued input
    energy_pj: float


@dataclass
class NeuronProfile:
    """One spiking layer: its output firing rate over all timesteps."""

    name: str
    firing_rate: float
    elements: int  # output elements per pass (T × B × ...)


@dataclass
class ProfileReport:
    """Result of :func:`profile_model`. Counts are for the whole batch and all ``T`` timesteps."""

    model_name: str
    is_spiking: bool
    input_shape: tuple[int, ...]  # (B, C_in, H, W)
    timesteps: int
    params: int  # parameters of modules that run at inference
    params_all: int  # every parameter of the module, training-only parts included
    excluded_modules: list[str]
    flops: int
    macs: int
    flops_per_timestep: float
    macs_per_timestep: float
    synaptic_macs: int
    real_input_macs: int
    other_macs: int
    sops: float
    energy_pj: float
    mean_firing_rate: float | None
    layers: list[LayerProfile] = field(default_factory=list)
    neurons: list[NeuronProfile] = field(default_factory=list)
    e_mac_pj: float = E_MAC_PJ
    e_ac_pj: float = E_AC_PJ

    @property
    def params_excluded(self) -> int:
        return self.params_all - self.params

    @property
    def energy_mj(self) -> float:
        return self.energy_pj * 1e-9

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (``json.dumps`` works on it)."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["params_excluded"] = self.params_excluded
        d["energy_mj"] = self.energy_mj
        d["conventions"] = {
            "flop_counter": "torch.utils.flop_counter.FlopCounterMode (2 FLOPs per MAC)",
            "sops": "input firing rate x layer MACs (all timesteps)",
            "energy": f"{self.e_mac_pj} pJ x real-valued MACs + {self.e_ac_pj} pJ x SOPs (45 nm)",
        }
        return d

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    # ---------------------------------------------------------------- rich tables
    def summary_table(self):
        """Rich table of the model-level figures."""
        from rich.table import Table

        b, _, h, w = self.input_shape
        t = Table(
            title=f"{self.model_name}: inference profile ({h}×{w}, batch {b}, T={self.timesteps})"
        )
        t.add_column("quantity")
        t.add_column("value", justify="right")
        t.add_row("parameters (inference)", f"{self.params:,} ({self.params / 1e6:.3f} M)")
        if self.params_excluded:
            t.add_row(
                "parameters excluded (training only)",
                f"{self.params_excluded:,} ({', '.join(self.excluded_modules)})",
            )
        t.add_row("GFLOPs total (2 per MAC)", f"{self.flops / 1e9:.4f}")
        t.add_row("GFLOPs per timestep", f"{self.flops_per_timestep / 1e9:.4f}")
        t.add_row("GMACs total", f"{self.macs / 1e9:.4f}")
        t.add_row("GMACs per timestep", f"{self.macs_per_timestep / 1e9:.4f}")
        if self.is_spiking:
            t.add_row("GMACs real-valued input (E_MAC)", f"{self.real_input_macs / 1e9:.4f}")
            t.add_row("GMACs outside conv/linear (E_MAC)", f"{self.other_macs / 1e9:.4f}")
            t.add_row("GSOPs", f"{self.sops / 1e9:.4f}")
            if self.mean_firing_rate is not None:
                t.add_row("mean firing rate", f"{self.mean_firing_rate:.4f}")
        t.add_row(
            f"energy (E_MAC={self.e_mac_pj} pJ, E_AC={self.e_ac_pj} pJ)",
            f"{self.energy_mj:.4f} mJ",
        )
        return t

    def layer_table(self):
        """Rich table of the synaptic layers."""
        from rich.table import Table

        t = Table(title="synaptic layers (conv / linear / matmul)")
        width = max([len(layer.name) for layer in self.layers] + [5])
        t.add_column("layer", min_width=width, overflow="fold")
        t.add_column("type", overflow="fold")
        for col in ("input fr", "MMACs", "MSOPs", "energy µJ"):
            t.add_column(col, justify="right")
        for layer in self.layers:
            t.add_row(
                layer.name,
                layer.kind,
                "— (real)" if layer.input_firing_rate is None else f"{layer.input_firing_rate:.4f}",
                f"{layer.macs / 1e6:.3f}",
                f"{layer.sops / 1e6:.3f}" if layer.spike_input else "—",
                f"{layer.energy_pj * 1e-6:.3f}",
            )
        return t

    def neuron_table(self):
        """Rich table of the spiking layers' firing rates."""
        from rich.table import Table

        t = Table(title="spiking layers (LIF)")
        width = max([len(n.name) for n in self.neurons] + [5])
        t.add_column("layer", min_width=width, overflow="fold")
        t.add_column("firing rate", justify="right")
        t.add_column("elements", justify="right")
        for n in self.neurons:
            t.add_row(n.name, f"{n.firing_rate:.4f}", f"{n.elements:,}")
        return t

    def to_table(self, layers: bool = True):
        """A rich renderable: the summary table, then (``layers``) the per-layer tables."""
        from rich.console import Group

        parts = [self.summary_table()]
        if layers:
            if self.layers:
                parts.append(self.layer_table())
            if self.neurons:
                parts.append(self.neuron_table())
        return Group(*parts)


def _default_neuron_types() -> tuple[type[nn.Module], ...]:
    from medspikeformer.neurons import LIFNeuron

    return (LIFNeuron,)


def _is_spike_tensor(x: Tensor) -> bool:
    """True when every entry is a non-negative integer (binary spikes or spike counts)."""
    if not x.is_floating_point():
        return bool((x >= 0).all())
    return bool(((x >= 0) & (x == torch.round(x))).all())


def _first_tensor(args: Sequence[Any]) -> Tensor | None:
    for a in args:
        if isinstance(a, Tensor):
            return a
    return None


class _LayerStats:
    def __init__(self) -> None:
        self.calls = 0
        self.spike_input = True
        self.input_sum = 0.0
        self.input_numel = 0


def _excluded_roots(model: nn.Module, ran: set[str]) -> list[str]:
    """Highest-level names of parameter-holding modules that did not run."""
    modules = dict(model.named_modules())
    roots: set[str] = set()
    for name, mod in modules.items():
        if name in ran or not any(True for _ in mod.parameters(recurse=False)):
            continue
        parts = name.split(".")
        top = name
        for k in range(len(parts) - 1, 0, -1):
            parent = ".".join(parts[:k])
            if parent in ran:
                break
            top = parent
        roots.add(top)
    return sorted(roots)


_MATMUL_OPS = {"mm": (0, 1), "bmm": (0, 1), "addmm": (1, 2), "baddbmm": (1, 2)}


def _matmul_macs(a: Tensor, b: Tensor) -> int:
    """MACs of ``a @ b`` for 2-D (``[m,k]·[k,n]``) or batched 3-D operands."""
    batch = a.shape[0] if a.dim() == 3 else 1
    return int(batch * a.shape[-2] * a.shape[-1] * b.shape[-1])


class _MatmulTracer(TorchDispatchMode):
    """Records matrix products issued outside synaptic modules, with their operands' spikiness."""

    def __init__(
        self, module_stack: list[str], synaptic_depth: list[int], order: dict[Any, int]
    ) -> None:
        super().__init__()
        self.module_stack = module_stack
        self.synaptic_depth = synaptic_depth
        self.order = order
        # (module name, op) -> [calls, macs, sops, macs without a spike operand]
        self.records: dict[tuple[str, str], list[float]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        op = func.overloadpacket.__name__
        if self.synaptic_depth[0] == 0 and op in _MATMUL_OPS:
            ia, ib = _MATMUL_OPS[op]
            a, b = args[ia], args[ib]
            macs = _matmul_macs(a, b)
            rates = [float(t.double().mean()) for t in (a, b) if _is_spike_tensor(t)]
            owner = self.module_stack[-1] if self.module_stack else ""
            self.order.setdefault(("matmul", owner, op), len(self.order))
            rec = self.records.setdefault((owner, op), [0, 0, 0.0, 0])
            rec[0] += 1
            rec[1] += macs
            if rates:
                rec[2] += synaptic_operations(min(rates), macs)
            else:
                rec[3] += macs
        return out


def _cpu_sdpa_flops(q_shape, k_shape, v_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """FLOPs of fused attention ``softmax(Q Kᵀ) V``: ``2·B·H·L·S·(E + E_v)`` (two matmuls)."""
    b, h, n_q, e = q_shape
    s, ev = k_shape[-2], v_shape[-1]
    return 2 * b * h * n_q * s * (e + ev)


def _cpu_sdpa_backward_flops(
    grad_shape, q_shape, k_shape, v_shape, *args: Any, out_shape=None, **kwargs: Any
) -> int:
    """Backward of fused attention: dV, dP, dQ, dK — four matmuls, ``4·B·H·L·S·(E + E_v)``."""
    return 2 * _cpu_sdpa_flops(q_shape, k_shape, v_shape)


def flop_counter_mode(display: bool = False):
    """``torch.utils.flop_counter.FlopCounterMode`` that also counts the CPU fused attention.

    PyTorch's counter has formulas for the CUDA flash/efficient attention kernels but not for
    ``aten._scaled_dot_product_flash_attention_for_cpu`` (and its backward), which
    ``F.scaled_dot_product_attention`` uses on the CPU: without these entries the ANN twin's
    attention would count as zero FLOPs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
    }
    return FlopCounterMode(display=display, custom_mapping=mapping)


def calibrate_batchnorm(model: nn.Module, x: Tensor, passes: int = 2) -> None:
    """Set every BatchNorm's running statistics from ``passes`` train-mode forwards on ``x``.

    An untrained model in eval mode normalises with the initial running statistics (mean 0,
    variance 1), so its pre-activations are far too small and its neurons barely fire; its firing
    rates, SOPs and energy would then describe no network anyone trains. Calibrating uses the
    cumulative average (``momentum=None``) and leaves the weights untouched. Used by
    ``medspikeformer profile`` when no checkpoint is given.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in norms]
    was_training = model.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            for _ in range(passes):
                model(x)
    finally:
        for m, (momentum, _) in zip(norms, saved):
            m.momentum = momentum
        model.train(was_training)


def profile_model(
    model: nn.Module,
    size: int | Sequence[int] = (256, 256),
    batch: int = 1,
    timesteps: int | None = None,
    *,
    seed: int = 0,
    in_channels: int | None = None,
    neuron_types: tuple[type[nn.Module], ...] | None = None,
    e_mac: float = E_MAC_PJ,
    e_ac: float = E_AC_PJ,
    calibrate_bn: bool = False,
    inputs: Tensor | None = None,
) -> ProfileReport:
    """Profile one eval forward pass of ``model`` on a seeded random ``[batch, C_in, H, W]`` input.

    Args:
        model: any ``nn.Module`` mapping ``[B, C_in, H, W]`` to logits; models of the registry
            provide ``model_name``, ``in_channels``, ``size_divisor``, ``is_spiking``, ``timesteps``.
        size: ``H`` or ``(H, W)``.
        batch: images per pass (counts are for the whole batch).
        timesteps: expected ``T``; must match ``model.timesteps`` (rebuild the model with
            ``create_model(name, timesteps=T)`` to profile another ``T``). ``None`` → the model's.
        seed: seed of the random input (standard normal, like a normalised image).
        in_channels: input channels when the model has no ``in_channels`` attribute (default 3).
        neuron_types: module classes whose outputs are spikes (default: ``LIFNeuron``).
        e_mac, e_ac: energy per MAC / per accumulate in pJ.
        calibrate_bn: first set BatchNorm running statistics from two train-mode passes on
            noise drawn from ``seed + 1`` (for untrained models; see ``calibrate_batchnorm``).
        inputs: a real image batch ``[B, C_in, H, W]`` to profile instead of the random input
            (firing rates, SOPs and energy depend on the input); ``batch`` is then ``B``.
    """
    if inputs is not None:
        batch = int(inputs.shape[0]) if inputs.dim() == 4 else 1
    hw = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(hw) != 2 or min(hw) <= 0:
        raise ConfigError(f"profile: size must be H or (H, W) with positive values, got {size!r}")
    if batch < 1:
        raise ConfigError(f"profile: batch must be >= 1, got {batch}")
    divisor = int(getattr(model, "size_divisor", 1))
    if hw[0] % divisor or hw[1] % divisor:
        raise ConfigError(
            f"profile: size {hw[0]}x{hw[1]} is not a multiple of the model's size divisor {divisor}"
        )
    model_t = int(getattr(model, "timesteps", 1))
    if timesteps is not None and int(timesteps) != model_t:
        raise ConfigError(
            f"profile: the model was built with timesteps={model_t}, not {timesteps}; "
            "rebuild it with create_model(name, timesteps=...)"
        )
    neuron_types = _default_neuron_types() if neuron_types is None else tuple(neuron_types)
    c_in = int(getattr(model, "in_channels", in_channels or 3))
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if inputs is not None:
        if inputs.dim() != 4 or inputs.shape[1] != c_in or tuple(inputs.shape[-2:]) != hw:
            raise ConfigError(
                f"profile: inputs must be [B, {c_in}, {hw[0]}, {hw[1]}], got {list(inputs.shape)}"
            )
        x = inputs.to(device=device, dtype=dtype)
    else:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, c_in, *hw, generator=gen).to(device=device, dtype=dtype)

    if calibrate_bn:
        calib_gen = torch.Generator().manual_seed(seed + 1)
        calib = torch.randn(max(2, batch), c_in, *hw, generator=calib_gen)
        calibrate_batchnorm(model, calib.to(device=device, dtype=dtype))

    names = {id(m): n for n, m in model.named_modules()}
    ran: set[str] = set()
    layer_stats: dict[str, _LayerStats] = {}
    neuron_sums: dict[str, list[float]] = {}
    handles = []

    module_stack: list[str] = []
    synaptic_depth = [0]
    order: dict[Any, int] = {}  # first-call order of layers and traced products

    def enter(mod: nn.Module, args: Any) -> None:
        name = names[id(mod)]
        ran.add(name)
        module_stack.append(name)

    def leave(mod: nn.Module, args: Any, out: Any) -> None:
        module_stack.pop()

    def synaptic_post(mod: nn.Module, args: Any, out: Any) -> None:
        synaptic_depth[0] -= 1

    def synaptic_pre(mod: nn.Module, args: Any) -> None:
        synaptic_depth[0] += 1
        inp = _first_tensor(args)
        order.setdefault(("layer", names[id(mod)]), len(order))
        st = layer_stats.setdefault(names[id(mod)], _LayerStats())
        st.calls += 1
        if inp is None:
            return
        st.spike_input = st.spike_input and _is_spike_tensor(inp)
        st.input_sum += float(inp.double().sum())
        st.input_numel += inp.numel()

    def neuron_post(mod: nn.Module, args: Any, out: Any) -> None:
        if isinstance(out, Tensor):
            acc = neuron_sums.setdefault(names[id(mod)], [0.0, 0])
            acc[0] += float(out.double().sum())
            acc[1] += out.numel()

    was_training = model.training
    model.eval()
    try:
        for mod in model.modules():
            handles.append(mod.register_forward_pre_hook(enter))
            handles.append(mod.register_forward_hook(leave))
            if isinstance(mod, SYNAPTIC_TYPES):
                handles.append(mod.register_forward_pre_hook(synaptic_pre))
                handles.append(mod.register_forward_hook(synaptic_post))
            if isinstance(mod, neuron_types):
                handles.append(mod.register_forward_hook(neuron_post))
        counter = flop_counter_mode()
        tracer = _MatmulTracer(module_stack, synaptic_depth, order)
        with torch.no_grad(), counter, tracer:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    spiking = bool(getattr(model, "is_spiking", bool(neuron_sums)))
    flops_by_module = counter.get_flop_counts()
    root = type(model).__name__
    total_flops = int(counter.get_total_flops())

    layers: list[LayerProfile] = []
    position: dict[int, int] = {}  # id(LayerProfile) -> first-call order
    synaptic_macs = real_macs = 0
    total_sops = 0.0
    for name, st in layer_stats.items():
        key = root if name == "" else f"{root}.{name}"
        flops = int(sum(flops_by_module.get(key, {}).values()))
        macs = flops // 2
        synaptic_macs += macs
        spike_in = spiking and st.spike_input and st.input_numel > 0
        fr = st.input_sum / st.input_numel if spike_in else None
        sops = synaptic_operations(fr, macs) if fr is not None else 0.0
        if spike_in:
            total_sops += sops
        else:
            real_macs += macs
        layer = LayerProfile(
            name=name,
            kind=type(model.get_submodule(name)).__name__,
            spike_input=spike_in,
            input_firing_rate=fr,
            calls=st.calls,
            flops=flops,
            macs=macs,
            sops=sops,
            energy_pj=energy_pj(0 if spike_in else macs, sops, e_mac, e_ac),
        )
        position[id(layer)] = order[("layer", name)]
        layers.append(layer)
    for (owner, op), (calls, macs, sops, plain_macs) in tracer.records.items():
        macs, plain_macs = int(macs), int(plain_macs)
        if not spiking:
            sops, plain_macs = 0.0, macs
        spike_in = plain_macs == 0
        synaptic_macs += macs
        total_sops += sops
        real_macs += plain_macs
        layer = LayerProfile(
            name=owner,
            kind=f"matmul ({op})",
            spike_input=spike_in,
            input_firing_rate=sops / macs if spike_in and macs else None,
            calls=int(calls),
            flops=2 * macs,
            macs=macs,
            sops=sops,
            energy_pj=energy_pj(plain_macs, sops, e_mac, e_ac),
        )
        position[id(layer)] = order[("matmul", owner, op)]
        layers.append(layer)
    layers.sort(key=lambda layer: position[id(layer)])
    total_macs = total_flops // 2
    other_macs = max(total_macs - synaptic_macs, 0)
    if spiking:
        energy = energy_pj(real_macs + other_macs, total_sops, e_mac, e_ac)
    else:
        energy = energy_pj(total_macs, 0.0, e_mac, e_ac)

    neurons = [
        NeuronProfile(name=n, firing_rate=s / max(c, 1), elements=int(c))
        for n, (s, c) in neuron_sums.items()
    ]
    spikes = sum(s for s, _ in neuron_sums.values())
    elements = sum(c for _, c in neuron_sums.values())
    mean_fr = spikes / elements if elements else None

    used: dict[int, Tensor] = {}
    for name, mod in model.named_modules():
        if name in ran:
            for p in mod.parameters(recurse=False):
                used[id(p)] = p
    all_params = {id(p): p for p in model.parameters()}
    params = sum(p.numel() for p in used.values())
    params_all = sum(p.numel() for p in all_params.values())
    t = max(model_t, 1)
    return ProfileReport(
        model_name=str(getattr(model, "model_name", type(model).__name__)),
        is_spiking=spiking,
        input_shape=(batch, c_in, *hw),
        timesteps=model_t,
        params=params,
        params_all=params_all,
        excluded_modules=_excluded_roots(model, ran),
        flops=total_flops,
        macs=total_macs,
        flops_per_timestep=total_flops / t,
        macs_per_timestep=total_macs / t,
        synaptic_macs=synaptic_macs,
        real_input_macs=real_macs,
        other_macs=other_macs if spiking else 0,
        sops=total_sops,
        energy_pj=energy,
        mean_firing_rate=mean_fr,
        layers=layers,
        neurons=neurons,
        e_mac_pj=e_mac,
        e_ac_pj=e_ac,
    )
