"""Attention maps for ``explain`` (paper Fig. 5): per encoder stage, the attention block's output.

``model.forward_all(x).attention`` is a list, per stage i, of ``[B, C_i, h_i, w_i]`` (mean over
the T timesteps for a spiking model). For MedSpikeFormer that is the SDSA output; for its ANN twin
(the teacher) the softmax self-attention output. :mod:`medspikeformer.viz.heatmap` reduces each to
the mean absolute value over channels and draws it over the image.
"""

from __future__ import annotations

import numpy as np
import torch

from medspikeformer.errors import ConfigError
from medspikeformer.models.base import SegmentationModel

__all__ = ["attention_maps", "prepare_image"]


def prepare_image(
    image: np.ndarray, size: tuple[int, int], in_channels: int
) -> tuple[torch.Tensor, np.ndarray]:
    """``uint8`` image → (model input ``[1,C,H,W]`` at ``size``, the resized ``uint8`` image).

    The resize follows the datasets' rule (area when shrinking, bilinear when enlarging).
    """
    from medspikeformer.data import resize_image, to_model_input

    small = np.ascontiguousarray(resize_image(image, size))
    return to_model_input(small, in_channels).unsqueeze(0), small


def attention_maps(model: SegmentationModel, x: torch.Tensor) -> list[torch.Tensor]:
    """Per-stage attention outputs ``[C_i, h_i, w_i]`` of ``x [1,C,H,W]`` (CPU float tensors).

    Raises:
        ConfigError: the model reports no attention (e.g. ``unet``, or ``attention="none"``).
    """
    model.eval()
    with torch.inference_mode():
        out = model.forward_all(x)
    maps = [a for a in (out.attention or []) if a is not None]
    if not maps:
        raise ConfigError(f"model {model.model_name!r} has no attention blocks to explain")
    return [a[0].detach().float().cpu() for a in maps]
