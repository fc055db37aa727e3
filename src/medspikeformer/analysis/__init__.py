"""Analysis tools: the spike-driven check."""

from medspikeformer.analysis.spike_check import (
    LayerRecord,
    SpikeCheckReport,
    check_spike_driven,
)

__all__ = ["LayerRecord", "SpikeCheckReport", "check_spike_driven"]
