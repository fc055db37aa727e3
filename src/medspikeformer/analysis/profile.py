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

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from medspikeformer.analysis.report import E_AC_PJ, E_MAC_PJ, ProfileReport
from medspikeformer.analysis.summary import summarise
from medspikeformer.analysis.trace import trace_forward
from medspikeformer.data.base import as_hw
from medspikeformer.errors import ConfigError
from medspikeformer.models import module_facts


def _default_neuron_types() -> tuple[type[nn.Module], ...]:
    from medspikeformer.neurons import LIFNeuron

    return (LIFNeuron,)


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
    try:
        hw = as_hw(size)  # the datasets' reading of a size: H or (H, W), positive
    except ConfigError as exc:
        raise ConfigError(f"profile: {exc}") from None
    if batch < 1:
        raise ConfigError(f"profile: batch must be >= 1, got {batch}")
    facts = module_facts(model)
    divisor = facts.size_divisor
    if hw[0] % divisor or hw[1] % divisor:
        raise ConfigError(
            f"profile: size {hw[0]}x{hw[1]} is not a multiple of the model's size divisor {divisor}"
        )
    model_t = facts.timesteps
    if timesteps is not None and int(timesteps) != model_t:
        raise ConfigError(
            f"profile: the model was built with timesteps={model_t}, not {timesteps}; "
            "rebuild it with create_model(name, timesteps=...)"
        )
    neuron_types = _default_neuron_types() if neuron_types is None else tuple(neuron_types)
    c_in = facts.in_channels if facts.in_channels is not None else (in_channels or 3)
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

    trace = trace_forward(model, x, neuron_types)
    return summarise(model, trace, (batch, c_in, *hw), model_t, e_mac, e_ac)
