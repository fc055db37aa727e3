"""MONAI U-Net baseline wrapped to follow the project's model contract."""

from __future__ import annotations

from typing import Any

import torch

from medspikeformer.errors import ConfigError
from medspikeformer.models.base import (
    SegmentationModel,
    check_option_limits,
    pop_multilabel,
    pop_num_classes,
)
from medspikeformer.models.output import SegmentationOutput


def default_unet_config() -> dict[str, Any]:
    """Default U-Net: 5 levels, widths 20·2^i (20…320), 2 residual units per level (2.54 M)."""
    return {"in_channels": 3, "base_channels": 20, "num_levels": 5, "num_res_units": 2}


class UNetBaseline(SegmentationModel):
    """``monai.networks.nets.UNet`` (2-D, ``num_classes`` logit channels, default 1) with the
    :class:`SegmentationModel` contract.

    ``forward`` → logits ``[B, K, H, W]``; ``forward_all`` → :class:`SegmentationOutput` with
    empty ``stage_logits`` and no attention; no ANN twin (``twin_config()`` is ``None``). ``timesteps`` is accepted and ignored (an ANN), recorded as 1, and so are
    the spiking models' speed-only options ``compile_neurons`` and ``checkpoint_attention`` (a
    dataset config may set them for every model).
    """

    def __init__(self, **config: Any) -> None:
        super().__init__()
        from monai.networks.nets import UNet

        config = dict(config)
        self.num_classes = pop_num_classes(config, "unet")
        self.multilabel = pop_multilabel(config, "unet")
        for ignored in ("timesteps", "compile_neurons", "checkpoint_attention"):
            config.pop(ignored, None)
        cfg = default_unet_config()
        unknown = sorted(set(config) - set(cfg))
        if unknown:
            raise ConfigError(f"unknown unet option(s) {unknown}; known: {sorted(cfg)}")
        cfg.update(config)
        for key, value in cfg.items():
            if not isinstance(value, int) or value < (0 if key == "num_res_units" else 1):
                raise ConfigError(f"unet option {key} must be a positive integer")
        check_option_limits(cfg, "unet")
        if cfg["num_levels"] < 2:
            raise ConfigError("unet option num_levels must be at least 2")
        cfg.update(self.label_config())  # empty for binary: configs stay as they were
        self.config = cfg
        self.model_name = "unet"
        self.in_channels = cfg["in_channels"]
        self.timesteps = 1
        self.is_spiking = False
        self.size_divisor = 2 ** (cfg["num_levels"] - 1)
        channels = tuple(cfg["base_channels"] * 2**i for i in range(cfg["num_levels"]))
        self.net = UNet(
            spatial_dims=2,
            in_channels=cfg["in_channels"],
            out_channels=self.num_classes,
            channels=channels,
            strides=(2,) * (cfg["num_levels"] - 1),
            num_res_units=cfg["num_res_units"],
            norm="batch",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K, H, W]`` in every mode."""
        self.check_input(x)
        return self.net(x)

    def forward_all(self, x: torch.Tensor, *, attention: bool = True) -> SegmentationOutput:
        """Logits only: no stage heads, no attention."""
        return SegmentationOutput(self.forward(x))
