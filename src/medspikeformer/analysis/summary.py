"""Summarising a :class:`~medspikeformer.analysis.trace.ForwardTrace` into a
:class:`~medspikeformer.analysis.report.ProfileReport`: MACs per layer, SOPs of spike-driven
layers and products, energy, firing rates and the parameters of the modules that ran."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from medspikeformer.analysis import report
from medspikeformer.analysis.trace import ForwardTrace
from medspikeformer.models import module_facts


def excluded_roots(model: nn.Module, ran: set[str]) -> list[str]:
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


def summarise(
    model: nn.Module,
    trace: ForwardTrace,
    x_shape: Sequence[int],
    model_t: int,
    e_mac: float = report.E_MAC_PJ,
    e_ac: float = report.E_AC_PJ,
) -> report.ProfileReport:
    """The report of one traced pass of ``model`` on an input of shape ``x_shape``
    (``[B, C_in, H, W]``) with ``model_t`` timesteps (conventions in ``analysis/profile.py``)."""
    known = module_facts(model).is_spiking
    spiking = bool(trace.neurons) if known is None else known
    flops_by_module = trace.flops_by_module
    root = type(model).__name__
    total_flops = trace.total_flops

    layers: list[report.LayerProfile] = []
    position: dict[int, int] = {}  # id(LayerProfile) -> first-call order
    synaptic_macs = real_macs = 0
    total_sops = 0.0
    for name, st in trace.layers.items():
        key = root if name == "" else f"{root}.{name}"
        flops = int(sum(flops_by_module.get(key, {}).values()))
        macs = flops // 2
        synaptic_macs += macs
        spike_in = spiking and st.counts and st.numel > 0
        fr = st.mean if spike_in else None
        sops = report.synaptic_operations(fr, macs) if fr is not None else 0.0
        if spike_in:
            total_sops += sops
        else:
            real_macs += macs
        layer = report.LayerProfile(
            name=name,
            kind=type(model.get_submodule(name)).__name__,
            spike_input=spike_in,
            input_firing_rate=fr,
            calls=st.calls,
            flops=flops,
            macs=macs,
            sops=sops,
            energy_pj=report.energy_pj(0 if spike_in else macs, sops, e_mac, e_ac),
        )
        position[id(layer)] = trace.order[("layer", name)]
        layers.append(layer)
    for (owner, op), (calls, macs, sops, plain_macs) in trace.matmuls.items():
        macs, plain_macs = int(macs), int(plain_macs)
        if not spiking:
            sops, plain_macs = 0.0, macs
        spike_in = plain_macs == 0
        synaptic_macs += macs
        total_sops += sops
        real_macs += plain_macs
        layer = report.LayerProfile(
            name=owner,
            kind=f"matmul ({op})",
            spike_input=spike_in,
            input_firing_rate=sops / macs if spike_in and macs else None,
            calls=int(calls),
            flops=2 * macs,
            macs=macs,
            sops=sops,
            energy_pj=report.energy_pj(plain_macs, sops, e_mac, e_ac),
        )
        position[id(layer)] = trace.order[("matmul", owner, op)]
        layers.append(layer)
    layers.sort(key=lambda layer: position[id(layer)])
    total_macs = total_flops // 2
    other_macs = max(total_macs - synaptic_macs, 0)
    if spiking:
        energy = report.energy_pj(real_macs + other_macs, total_sops, e_mac, e_ac)
    else:
        energy = report.energy_pj(total_macs, 0.0, e_mac, e_ac)

    neurons = [
        report.NeuronProfile(name=n, firing_rate=s / max(c, 1), elements=int(c))
        for n, (s, c) in trace.neurons.items()
    ]
    spikes = sum(s for s, _ in trace.neurons.values())
    elements = sum(c for _, c in trace.neurons.values())
    mean_fr = spikes / elements if elements else None

    used: dict[int, Tensor] = {}
    for name, mod in model.named_modules():
        if name in trace.ran:
            for p in mod.parameters(recurse=False):
                used[id(p)] = p
    all_params = {id(p): p for p in model.parameters()}
    params = sum(p.numel() for p in used.values())
    params_all = sum(p.numel() for p in all_params.values())
    t = max(model_t, 1)
    return report.ProfileReport(
        model_name=module_facts(model).model_name,
        is_spiking=spiking,
        input_shape=tuple(x_shape),
        timesteps=model_t,
        params=params,
        params_all=params_all,
        excluded_modules=excluded_roots(model, trace.ran),
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
        neuron=neuron_label(model) if spiking else "",
    )


def neuron_label(model: nn.Module) -> str:
    """``I-LIF, D = 4`` or ``LIF`` from a model's ``neuron`` / ``levels`` options ("" if none)."""
    config = module_facts(model).config
    kind = config.get("neuron")
    if kind == "ilif":
        return f"I-LIF, D = {config.get('levels')}"
    return "LIF" if kind == "lif" else ""
