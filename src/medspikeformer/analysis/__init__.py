"""Analysis tools: the spike-driven check and the inference profiler (FLOPs, SOPs, energy).

``hooks.py`` holds the one synaptic-input hook both use; the profiler is split into tracing a
forward pass (``trace.py``), summarising it (``summary.py``) into the report (``report.py``),
and the entry point (``profile.py``).
"""

from medspikeformer.analysis.profile import calibrate_batchnorm, profile_model
from medspikeformer.analysis.report import ProfileReport
from medspikeformer.analysis.spike_check import (
    LayerRecord,
    SpikeCheckReport,
    check_spike_driven,
)

__all__ = [
    "LayerRecord",
    "ProfileReport",
    "SpikeCheckReport",
    "calibrate_batchnorm",
    "check_spike_driven",
    "profile_model",
]
