"""Plain layers shared by ``attention`` and ``models`` (below both in the import order).

- :mod:`~medspikeformer.layers.spike_conv`: ``SpikeSavingConv2d`` / ``spike_conv2d``, the conv
  after a LIF that saves its 0/1 input as ``bool`` for backward;
- :mod:`~medspikeformer.layers.conv`: ``ConvBN``, ``SpikeConv`` (LIF → conv → BN) and
  ``make_activation`` (LIF or the ANN twin's ReLU);
- :mod:`~medspikeformer.layers.time`: the ``[T, B, ...]`` helpers ``fold`` / ``unfold``,
  ``seq_apply`` and ``upsample2x``.

The segmentation heads (``Head``, ``StageHead``) stay in ``models.blocks``: they encode the
model's output contract (mean over T, the head gain), not a reusable layer.
"""

from medspikeformer.layers.conv import ConvBN, SpikeConv, make_activation
from medspikeformer.layers.spike_conv import SpikeSavingConv2d, spike_conv2d
from medspikeformer.layers.time import fold, seq_apply, unfold, upsample2x

__all__ = [
    "ConvBN",
    "SpikeConv",
    "SpikeSavingConv2d",
    "fold",
    "make_activation",
    "seq_apply",
    "spike_conv2d",
    "unfold",
    "upsample2x",
]
