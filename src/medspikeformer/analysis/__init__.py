"""Analysis tools: the spike-driven check and the inference profiler (FLOPs, SOPs, energy).

``hooks.py`` holds the one synaptic-input hook both use; the profiler is split into tracing a
forward pass (``trace.py``), summarising it (``summary.py``) into the report (``report.py``),
and the entry point (``profile.py``).
"""

from medspikeformer.analysis.hooks import SYNAPTIC_TYPES
from medspikeformer.analysis.profile import calibrate_batchnorm, profile_model
from medspikeformer.analysis.report import (
    E_AC_PJ,
    E_MAC_PJ,
    LayerProfile,
    NeuronProfile,
    ProfileReport,
    energy_pj,
    synaptic_operations,
)
from medspikeformer.analysis.spike_check import LayerRecord, SpikeCheckReport, check_spike_driven
from medspikeformer.analysis.trace import flop_counter_mode

__all__ = [
    "E_AC_PJ",
    "E_MAC_PJ",
    "SYNAPTIC_TYPES",
    "LayerProfile",
    "LayerRecord",
    "NeuronProfile",
    "ProfileReport",
    "SpikeCheckReport",
    "calibrate_batchnorm",
    "check_spike_driven",
    "energy_pj",
    "flop_counter_mode",
    "profile_model",
    "synaptic_operations",
]
