"""Backward-compatible import path of the profiler, which lives in :mod:`medspikeformer.analysis`
(``profile.py`` runs it, ``trace.py`` records a forward pass, ``summary.py`` turns that into the
:class:`ProfileReport` of ``report.py``)."""

# The profiler's public names are those of the analysis package (its __all__).
from medspikeformer.analysis import *  # noqa: F403
