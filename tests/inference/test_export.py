"""ONNX export of the eval graph, checked with onnx.checker and run with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.errors import ConfigError
from medspikeformer.inference.export import compare_onnx, export_onnx, lif_unrolled
from tiny_models import SMALL_MSF

from .helpers import SIZE, TINY, calibrate

onnx = pytest.importorskip("onnx", reason="onnx is an optional dependency ([export] extra)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from medspikeformer import create_model

    torch.manual_seed(0)
    # the paper's binary LIF, whose graph the tests below read (integer spikes: further down)
    model = calibrate(create_model("medspikeformer", **TINY, neuron="lif"))
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    report = export_onnx(model, path, size=(SIZE, SIZE))
    return model, path, report


def test_export_is_valid_and_matches_pytorch(exported):
    model, path, report = exported
    onnx.checker.check_model(onnx.load(str(path)))
    with torch.no_grad():  # the comparison is not vacuous: the output depends on the input
        a, b = model(torch.zeros(1, 3, SIZE, SIZE)), model(torch.rand(1, 3, SIZE, SIZE))
    assert not torch.equal(a, b)
    print(f"ONNX vs PyTorch: max abs logit error {report.max_abs_error:.3g}")
    assert report.max_abs_error is not None
    # spikes can flip where a membrane sits exactly on the threshold: allow a few logits
    assert report.mismatch_fraction <= 0.01
    assert report.max_abs_error < 1e-3 or report.mismatch_fraction <= 0.01


def test_onnx_runs_other_batches_and_has_one_output(exported):
    model, path, _ = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits"]  # no stage heads, no teacher
    x = torch.rand(3, 3, SIZE, SIZE) * 2.0
    out = session.run(None, {"image": x.numpy()})[0]
    assert out.shape == (3, 1, SIZE, SIZE)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.mean(np.abs(out - ref) < 1e-4) > 0.99
    worst, frac, masks = compare_onnx(model, path, [x])
    assert worst >= 0.0 and 0.0 <= masks <= 0.01
    assert frac <= 0.01
    _, _, masks_full = compare_onnx(model, path, [x], full_optimization=True)
    assert masks_full <= 0.05


def test_graph_unrolls_the_timesteps(exported):
    """T=2: one threshold comparison per timestep per LIF neuron; no loops; forwards restored."""
    from medspikeformer.neurons import LIFNeuron

    model, path, report = exported
    neurons = [m for m in model.modules() if isinstance(m, LIFNeuron)]
    graph = onnx.load(str(path)).graph
    compares = sum(n.op_type == "GreaterOrEqual" for n in graph.node)
    assert compares == 2 * len(neurons) > 0
    assert "Loop" not in report.ops and "Scan" not in report.ops
    assert all("forward" not in vars(m) for m in neurons)  # no forward was monkey-patched
    assert {m.backend for m in neurons} == {"eager"}  # the unrolled backend was export-only


@settings(max_examples=20, deadline=None)
@given(
    steps=st.integers(1, 6),
    tau=st.sampled_from([1.5, 2.0, 3.0, 10.0]),
    v_threshold=st.sampled_from([0.5, 1.0, 1.3]),
    seed=st.integers(0, 10_000),
)
def test_lif_unrolled_equals_the_neuron(steps, tau, v_threshold, seed):
    from medspikeformer.neurons import LIFNeuron

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, 3, 17, generator=gen) * 2.0
    neuron = LIFNeuron(tau=tau, v_threshold=v_threshold)
    with torch.no_grad():
        expected = neuron(x)
    got = lif_unrolled(x, tau, v_threshold)
    # identical except where float rounding puts a membrane exactly on the threshold
    assert (got != expected).float().mean() <= 0.01


def test_export_without_the_neuron_swap_would_be_wrong(tmp_path, monkeypatch):
    """The neurons' out= kernels are invisible to the tracer: without the swap the graph is wrong.

    Guards the reason export_friendly_neurons exists; if the neuron kernel ever becomes
    traceable this test tells us the swap can go.
    """
    import contextlib

    from medspikeformer import create_model
    from medspikeformer.inference import export as export_mod

    torch.manual_seed(0)
    model = calibrate(create_model("medspikeformer", **TINY))
    monkeypatch.setattr(export_mod, "export_friendly_neurons", lambda m: contextlib.nullcontext(0))
    report = export_onnx(model, tmp_path / "raw.onnx", size=(SIZE, SIZE))
    if report.mismatch_fraction == 0.0:
        pytest.skip("the neuron kernel is traceable as is; export_friendly_neurons is optional")
    assert report.mismatch_fraction > 0.1


def test_export_size_must_fit_the_divisor(tmp_path):
    from medspikeformer import create_model

    model = create_model("medspikeformer", **SMALL_MSF)
    with pytest.raises(ConfigError, match="size_divisor"):
        export_onnx(model, tmp_path / "x.onnx", size=(30, 32), verify=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ann", "unet", "ssa", "sdt", "qk", "medspikeformer_wo_sc"])
def test_every_model_family_exports(tmp_path, name):
    """Baselines and ablations export too (ANN softmax attention, MONAI U-Net, other spiking
    attentions) and match PyTorch in onnxruntime."""
    from medspikeformer import create_model

    torch.manual_seed(0)
    overrides = {} if name == "unet" else {"base_channels": 8}
    if name not in ("unet", "ann"):
        overrides["timesteps"] = 2
    model = calibrate(create_model(name, **overrides))
    report = export_onnx(model, tmp_path / f"{name}.onnx", size=(SIZE, SIZE))
    print(f"{name}: max abs logit error {report.max_abs_error:.3g}")
    assert report.mismatch_fraction <= 0.01
