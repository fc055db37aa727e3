"""make wheelhouse: every runtime dependency except torch and what only torch needs."""

from __future__ import annotations

import wheelhouse


def _item(name: str, version: str, *requires: str) -> dict:
    return {"metadata": {"name": name, "version": version, "requires_dist": list(requires)}}


def test_resolution_drops_torch_and_what_only_torch_needs() -> None:
    report = {
        "environment": {"python_version": "3.12", "sys_platform": "linux"},
        "install": [
            _item("monai", "1.5.2", "torch>=2.4", "numpy>=1.24"),
            _item("torch", "2.9.0", "sympy", "nvidia-cudnn-cu12; sys_platform == 'linux'", "numpy"),
            _item("sympy", "1.14", "mpmath"),
            _item("mpmath", "1.3"),
            _item("nvidia-cudnn-cu12", "9.1"),
            _item("numpy", "2.3.0"),
            _item("Pillow", "11.0", "olefile; extra == 'fpx'"),
            _item("olefile", "0.47"),
        ],
    }
    keep = wheelhouse.keep_without_torch(report, ["monai>=1.3", "pillow>=10"])
    assert keep == {"monai": "1.5.2", "numpy": "2.3.0", "pillow": "11.0"}


def test_runtime_requirements_leave_out_torch() -> None:
    reqs = wheelhouse.runtime_requirements()
    assert reqs and not any(r.startswith("torch") for r in reqs)
    assert any(r.startswith("monai") for r in reqs)
