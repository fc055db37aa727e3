"""Backward-compatible import path of the profiler, which lives in :mod:`medspikeformer.analysis`
(``profile.py`` runs it, ``trace.py`` records a forward pass, ``summary.py`` turns that into the
:class:`ProfileReport` of ``report.py``)."""

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
from medspikeformer.analysis.trace import flop_counter_mode

__all__ = [
    "E_AC_PJ",
    "E_MAC_PJ",
    "SYNAPTIC_TYPES",
    "LayerProfile",
    "NeuronProfile",
    "ProfileReport",
    "calibrate_batchnorm",
    "energy_pj",
    "flop_counter_mode",
    "profile_model",
    "synaptic_operations",
]
