"""Experiments: the paper's comparison (Table 1) and ablation (Tables 2–3, timesteps) tables.

Public API::

    from medspikeformer.experiments import ExperimentSpec, run_experiment
    result = run_experiment(ExperimentSpec("compare", "kvasir", out="exp/cmp",
                                           data_root=DIR, recipe="cpu-quick"))

``rows`` holds the row definitions and the paper's figures, ``stats`` the mean ± std and the paired
Wilcoxon test, ``tables`` the markdown/CSV, ``plots`` the PNG figures, ``runner`` the resumable
train → evaluate → profile loop. See docs/results.md.
"""

from __future__ import annotations

from medspikeformer.experiments.rows import (
    ABLATION_ROWS,
    COMPARE_ROWS,
    REFERENCE_ROW,
    Row,
    ablation_rows,
    compare_rows,
)
from medspikeformer.experiments.runner import ExperimentResult, ExperimentSpec, run_experiment
from medspikeformer.experiments.stats import PairedTest, mean_std, paired_wilcoxon

__all__ = [
    "ABLATION_ROWS",
    "COMPARE_ROWS",
    "REFERENCE_ROW",
    "ExperimentResult",
    "ExperimentSpec",
    "PairedTest",
    "Row",
    "ablation_rows",
    "compare_rows",
    "mean_std",
    "paired_wilcoxon",
    "run_experiment",
]
