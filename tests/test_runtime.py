"""The GPU-run guess made without torch, and the warning for a CPU-only torch beside a driver."""

from __future__ import annotations

import torch

from medspikeformer.runtime import cuda_expected


def test_cuda_expected_needs_a_driver_visible_devices_and_a_cuda_torch(tmp_path) -> None:
    node = tmp_path / "nvidiactl"
    node.touch()
    absent = (str(tmp_path / "none"),)
    assert cuda_expected({}, (str(node),), torch_cuda=True) is True
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": "0"}, (str(node),), torch_cuda=True) is True
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": ""}, (str(node),), torch_cuda=True) is False
    assert cuda_expected({"CUDA_VISIBLE_DEVICES": "-1"}, (str(node),), torch_cuda=True) is False
    assert cuda_expected({}, absent, torch_cuda=True) is False
    # A CPU-only torch computes on the CPU whatever driver the machine has: CPU settings apply.
    assert cuda_expected({}, (str(node),), torch_cuda=False) is False
    assert cuda_expected({}, (str(node),)) is (torch.version.cuda is not None)


def test_cpu_torch_beside_a_gpu_driver_warns_once(tmp_path, monkeypatch, capsys) -> None:
    """A CPU-only torch on a machine with an NVIDIA driver: one warning line naming the fix,
    once per process, and none without a driver."""
    import medspikeformer.runtime as rt

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(rt, "_state", {})
    monkeypatch.setattr(rt, "DRIVER_PATHS", (str(tmp_path / "nvidiactl"),))
    assert rt.resolve_device("auto").type == "cpu"
    assert capsys.readouterr().err == ""
    (tmp_path / "nvidiactl").touch()
    assert rt.resolve_device("auto").type == "cpu"
    assert rt.resolve_device(None).type == "cpu"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "NVIDIA driver is present" in lines[0] and "install a CUDA build of torch" in lines[0]
