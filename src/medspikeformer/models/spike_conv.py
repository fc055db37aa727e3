"""Backward-compatible import path: the spike-saving convolution lives in
:mod:`medspikeformer.layers.spike_conv` (below both ``attention`` and ``models``)."""

from medspikeformer.layers.spike_conv import SpikeSavingConv2d, spike_conv2d

__all__ = ["SpikeSavingConv2d", "spike_conv2d"]
