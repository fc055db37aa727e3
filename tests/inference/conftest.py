"""Fixtures for the inference tests: a tiny spiking model and a pointwise model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from .helpers import TINY, PointwiseModel, calibrate


@pytest.fixture
def pointwise() -> PointwiseModel:
    return PointwiseModel().eval()


@pytest.fixture(scope="module")
def tiny_model() -> nn.Module:
    from medspikeformer import create_model

    torch.manual_seed(0)
    return calibrate(create_model("medspikeformer", **TINY))
