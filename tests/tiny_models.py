"""The tiny model configurations every test shares (one place; import ``from tiny_models``).

``tests/`` is on ``sys.path`` under pytest (rootdir conftest), so any test module can import it.

* :data:`TINY_MSF` — the smallest MedSpikeFormer: 2 encoder units of width 4 and 8, T = 2
  (fast on one CPU thread at 32×32; size divisor 2);
* :data:`SMALL_MSF` — all 4 encoder units (width 8…64, T = 2, size divisor 8): for tests that
  need the full depth (stage heads of every unit, attention maps, calibrated firing);
* :data:`TINY_UNET` — a 2-level U-Net of width 4 and 8 with one residual unit per level.
"""

from __future__ import annotations

from typing import Any

TINY_MSF: dict[str, Any] = {"base_channels": 4, "num_units": 2, "timesteps": 2, "head_dim": 4}
SMALL_MSF: dict[str, Any] = {"base_channels": 8, "timesteps": 2}
TINY_UNET: dict[str, Any] = {"base_channels": 4, "num_levels": 2, "num_res_units": 1}


def tiny_options(name: str, *, small: bool = False) -> dict[str, Any]:
    """Options of ``create_model(name, **options)``: the U-Net's for ``unet``, else the
    MedSpikeFormer family's (:data:`SMALL_MSF` with ``small``)."""
    if name == "unet":
        return dict(TINY_UNET)
    return dict(SMALL_MSF if small else TINY_MSF)
