"""The profiler's result: :class:`ProfileReport` (model-level figures, per-layer rows, rich
tables, JSON) and the energy model ``E = E_MAC × MACs + E_AC × SOPs`` (45 nm)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    neuron: str = ""  # e.g. "I-LIF, D = 4" / "LIF": which spikes the counts are of

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
        """The report as JSON, through ``outputs`` (atomic, never through a link)."""
        from medspikeformer.outputs import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

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
        if self.neuron:
            t.add_row("neuron (spikes counted)", self.neuron)
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
        t = _layer_name_table(
            "synaptic layers (conv / linear / matmul)", [layer.name for layer in self.layers]
        )
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
        t = _layer_name_table("spiking layers (LIF)", [n.name for n in self.neurons])
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


def _layer_name_table(title: str, names: list[str]):
    """A rich table titled ``title`` whose first column, "layer", fits the longest of ``names``."""
    from rich.table import Table

    t = Table(title=title)
    t.add_column("layer", min_width=max([len(n) for n in names] + [5]), overflow="fold")
    return t
