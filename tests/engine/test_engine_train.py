"""Training loop end to end on tiny synthetic data: outputs, resume, teacher modes, NaN policy."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pytest
import torch

import medspikeformer.engine.optim as optim_mod
import medspikeformer.engine.step as step_mod
import medspikeformer.engine.trainer as trainer_mod
from medspikeformer import create_model, list_models
from medspikeformer.cli import main
from medspikeformer.engine import train
from medspikeformer.engine.checkpoint import load_checkpoint, load_model
from medspikeformer.engine.config import load_config
from medspikeformer.errors import CheckpointError, ConfigError, NumericalError
from medspikeformer.losses import BCEDiceLoss
from medspikeformer.metrics import SegmentationMetrics
from tiny_models import TINY_UNET

from .helpers import TINY_MODEL, quiet, tiny_config


def _rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "metrics.csv").open()))


def _evaluate(ckpt: Path, cfg: dict) -> dict[str, float]:
    """Single-process evaluation of a checkpoint on the run's val split."""
    from medspikeformer.data import build_dataset

    model, _ = load_model(ckpt)
    d = cfg["data"]
    ds = build_dataset(
        "synthetic",
        split="val",
        size=d["size"],
        split_spec=d["split_spec"],
        augment="none",
        **d["options"],
    )
    m = SegmentationMetrics()
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            m.update(torch.sigmoid(model(item["image"][None])), item["mask"][None], [item["id"]])
    return m.compute()


def test_end_to_end_then_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = tiny_config(run)
    result = train(cfg, log=quiet)
    assert result["run_dir"] == str(run) and result["epochs_run"] == 2
    for name in ("config.yaml", "split.json", "versions.json", "metrics.csv", "best.pt", "last.pt"):
        assert (run / name).is_file(), name
    assert not (run / ".lock").exists()
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for col in (
        "train_bce",
        "train_dice",
        "train_align_kl",
        "train_align_l2",
        "train_teacher_seg",
        "train_total",
    ):
        assert math.isfinite(float(rows[0][col])), col
    # total = bce + dice + λ·align (λ = 1), averaged over the same steps.
    r = rows[0]
    assert float(r["train_total"]) == pytest.approx(
        float(r["train_bce"]) + float(r["train_dice"]) + float(r["train_align"]), rel=1e-6
    )
    # The resolved config reloads to the same thing.
    assert load_config(run / "config.yaml").to_dict()["model"]["base_channels"] == 4
    # best.pt: student only, val metrics equal a fresh single-process evaluation.
    best = load_checkpoint(run / "best.pt")
    assert "resume" not in best
    assert all(not k.startswith("teacher") for k in best["state_dict"])
    fresh = _evaluate(run / "best.pt", cfg)
    best_row = rows[best["epoch"] - 1]
    assert fresh["miou"] == pytest.approx(float(best_row["val_miou"]), abs=1e-12)
    assert fresh["dsc"] == pytest.approx(best["metrics"]["val_dsc"], abs=1e-12)
    last = load_checkpoint(run / "last.pt")
    assert last["epoch"] == 2
    assert {
        "optimizer",
        "scheduler",
        "teacher_state_dict",
        "teacher_optimizer",
        "rng",
        "loop",
    } <= set(last["resume"])
    # Resume to 3 epochs: epochs 1-2 are kept, epoch 3 appended.
    cfg["train"]["epochs"] = 3
    result = train(cfg, resume=run, log=quiet)
    assert result["epochs_run"] == 3
    rows3 = _rows(run)
    assert [r["epoch"] for r in rows3] == ["1", "2", "3"]
    assert rows3[:2] == rows
    # Nothing left to do: a second resume is a no-op.
    assert train(cfg, resume=run, log=quiet)["epochs_run"] == 3


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(run / "last.pt")
    return {
        **ckpt["state_dict"],
        **{f"teacher.{k}": v for k, v in ckpt["resume"]["teacher_state_dict"].items()},
    }


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    over = {
        "train": {"epochs": 4, "batch_size": 3, "progress": False, "deterministic": True},
        "data": {"augment": "paper"},
    }
    straight = tiny_config(tmp_path / "a", **over)
    train(straight, log=quiet)
    split = tiny_config(tmp_path / "b", **over)
    split["train"]["epochs"] = 2
    train(split, log=quiet)
    split["train"]["epochs"] = 4
    train(split, resume=tmp_path / "b", log=quiet)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ra, rb = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    drop = {"time_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in ra] == [
        {k: v for k, v in r.items() if k not in drop} for r in rb
    ]
    assert not torch.are_deterministic_algorithms_enabled()  # restored after training


def test_resume_without_optimizer_state_would_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The equivalence test can fail: dropping the optimiser state on resume changes the weights."""
    over = {"train": {"epochs": 2, "batch_size": 3, "progress": False, "deterministic": True}}
    straight = tiny_config(tmp_path / "a", **over)
    train(straight, log=quiet)
    split = tiny_config(tmp_path / "b", **over)
    split["train"]["epochs"] = 1
    train(split, log=quiet)
    monkeypatch.setattr(torch.optim.Adam, "load_state_dict", lambda self, state: None)
    split["train"]["epochs"] = 2
    train(split, resume=tmp_path / "b", log=quiet)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_teacher_none_has_no_alignment(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "r", teacher={"mode": "none"})
    result = train(cfg, log=quiet)
    assert result["teacher"] == "none"
    row = _rows(tmp_path / "r")[0]
    assert row["train_align"] == "nan" and row["train_teacher_seg"] == "nan"
    assert float(row["train_total"]) == pytest.approx(
        float(row["train_bce"]) + float(row["train_dice"]), rel=1e-6
    )
    assert load_checkpoint(tmp_path / "r" / "last.pt")["resume"]["teacher_state_dict"] is None


def test_teacher_joint_trains_the_twin(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path / "r",
        teacher={"mode": "joint"},
        train={"epochs": 1, "batch_size": 3, "progress": False},
    )
    train(cfg, log=quiet)
    from medspikeformer.models import build_teacher

    torch.manual_seed(41)
    student = create_model(
        **{"name": TINY_MODEL["name"]}, **{k: v for k, v in TINY_MODEL.items() if k != "name"}
    )
    twin = build_teacher(student)
    trained = load_checkpoint(tmp_path / "r" / "last.pt")["resume"]["teacher_state_dict"]
    assert trained.keys() == twin.state_dict().keys()
    row = _rows(tmp_path / "r")[0]
    assert math.isfinite(float(row["train_teacher_seg"])) and math.isfinite(
        float(row["train_align_kl"])
    )


def test_teacher_from_checkpoint_is_frozen_and_must_match(tmp_path: Path) -> None:
    opts = {k: v for k, v in TINY_MODEL.items() if k != "name"}
    ann_cfg = tiny_config(
        tmp_path / "ann",
        model={"name": "ann", **opts},
        teacher={"mode": "none"},
        train={"epochs": 1, "batch_size": 3, "progress": False, "stage_supervision": 1.0},
    )
    train(ann_cfg, log=quiet)
    ann_path = tmp_path / "ann" / "best.pt"
    before = load_checkpoint(ann_path)["state_dict"]
    cfg = tiny_config(tmp_path / "student", teacher={"mode": str(ann_path)})
    result = train(cfg, log=quiet)
    assert result["teacher"] == str(ann_path)
    row = _rows(tmp_path / "student")[0]
    assert math.isfinite(float(row["train_align"])) and row["train_teacher_seg"] == "nan"
    assert load_checkpoint(ann_path)["state_dict"].keys() == before.keys()
    # A teacher of other widths is refused, naming both sides.
    wide = tiny_config(
        tmp_path / "wide",
        model={"name": "ann", **{**opts, "base_channels": 8}},
        teacher={"mode": "none"},
        train={"epochs": 1, "batch_size": 3, "progress": False},
    )
    train(wide, log=quiet)
    bad = tiny_config(tmp_path / "bad", teacher={"mode": str(tmp_path / "wide" / "best.pt")})
    with pytest.raises(
        CheckpointError, match=r"wide/best\.pt.*'base_channels': 8.*ANN twin of student"
    ):
        train(bad, log=quiet)


def test_frozen_teacher_receives_no_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = {k: v for k, v in TINY_MODEL.items() if k != "name"}
    ann_cfg = tiny_config(
        tmp_path / "ann",
        model={"name": "ann", **opts},
        teacher={"mode": "none"},
        train={"epochs": 1, "batch_size": 3, "progress": False},
    )
    train(ann_cfg, log=quiet)
    seen = {}
    real = trainer_mod._Run.run

    def spy(self):
        out = real(self)
        seen["teacher"] = {k: v.clone() for k, v in self.teacher.state_dict().items()}
        seen["grad"] = [p.grad for p in self.teacher.parameters()]
        return out

    monkeypatch.setattr(trainer_mod._Run, "run", spy)
    train(
        tiny_config(tmp_path / "s", teacher={"mode": str(tmp_path / "ann" / "best.pt")}), log=quiet
    )
    saved = load_checkpoint(tmp_path / "ann" / "best.pt")["state_dict"]
    for k, v in saved.items():
        assert torch.equal(seen["teacher"][k], v), k
    assert all(g is None for g in seen["grad"])


class _NaNAtCall(BCEDiceLoss):
    """BCE+Dice whose ``components`` return a NaN BCE at the given (1-based) calls."""

    bad_calls: tuple[int, ...] = ()
    calls = 0

    def components(self, logits, target):
        type(self).calls += 1
        parts = super().components(logits, target)
        if type(self).calls in self.bad_calls:
            parts["bce"] = parts["bce"] * float("nan")
        return parts


def _nan_loss(monkeypatch: pytest.MonkeyPatch, calls: tuple[int, ...]) -> None:
    _NaNAtCall.calls = 0
    _NaNAtCall.bad_calls = calls
    monkeypatch.setattr(step_mod, "BCEDiceLoss", _NaNAtCall)  # the step builds the loss


def test_nan_stop_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # teacher none → one components() call per train step, one per val batch.
    # Epoch 1: 2 train steps (6 images / 3) + 1 val batch = calls 1-3; epoch 2 step 1 = call 4.
    _nan_loss(monkeypatch, (4,))
    cfg = tiny_config(
        tmp_path / "r",
        teacher={"mode": "none"},
        train={"epochs": 3, "batch_size": 3, "progress": False},
    )
    with pytest.raises(
        NumericalError, match=r"epoch 2 step 1: non-finite loss.*last\.pt \(epoch 1\) kept"
    ):
        train(cfg, log=quiet)
    last = load_checkpoint(tmp_path / "r" / "last.pt")
    assert last["epoch"] == 1
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )
    assert not (tmp_path / "r" / ".lock").exists()
    # The CLI turns it into one line and exit status 2.


def test_nan_skip_counts_and_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _nan_loss(monkeypatch, (1,))
    cfg = tiny_config(
        tmp_path / "r",
        teacher={"mode": "none"},
        train={"epochs": 2, "batch_size": 3, "progress": False, "nan_policy": "skip"},
    )
    result = train(cfg, log=quiet)
    assert result["nan_skipped"] == 1
    rows = _rows(tmp_path / "r")
    assert [r["nan_skipped"] for r in rows] == ["1", "0"]
    last = load_checkpoint(tmp_path / "r" / "last.pt")
    assert all(
        torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point()
    )


def test_locked_run_directory_is_refused(tmp_path: Path) -> None:
    from medspikeformer.engine.run_dir import RunLock

    run = tmp_path / "r"
    run.mkdir()
    with RunLock(run), pytest.raises(ConfigError, match="locked"):
        train(tiny_config(run), log=quiet)


def test_output_dir_not_writable(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="not writable"):
        train(tiny_config(tmp_path / "f" / "run"), log=quiet)


def test_fresh_start_on_an_existing_run_is_refused(tmp_path: Path) -> None:
    """Training afresh into a folder that holds a run would overwrite its checkpoints."""
    run = tmp_path / "r"
    train(tiny_config(run, train={"epochs": 1}), log=quiet)
    before = (run / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"already holds a training run.*--resume"):
        train(tiny_config(run, train={"epochs": 1}), log=quiet)
    assert (run / "last.pt").read_bytes() == before


def test_resume_without_last_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(resume=tmp_path, log=quiet)


def _tiny_options(name: str) -> dict:
    if name == "unet":
        return dict(TINY_UNET)
    return {k: v for k, v in TINY_MODEL.items() if k != "name"}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains(tmp_path: Path, name: str) -> None:
    cfg = tiny_config(
        tmp_path / name,
        model={"name": name, **_tiny_options(name)},
        train={"epochs": 1, "batch_size": 6, "progress": False},
    )
    result = train(cfg, log=quiet)
    expected_teacher = "joint" if name.startswith("medspikeformer") else "none"
    assert result["teacher"] == expected_teacher
    assert 0.0 <= result["final_metrics"]["val_miou"] <= 1.0
    model, _ = load_model(tmp_path / name / "best.pt", expected_model=name)
    assert model.model_name == name


def test_gradient_clipping_bounds_the_norm() -> None:
    layer = torch.nn.Linear(4, 4)
    (layer(torch.ones(2, 4)) * 1000).sum().backward()
    params = list(layer.parameters())
    before = optim_mod.grad_norm(params, None)
    assert before > 1.0
    optim_mod.grad_norm(params, 0.5)
    after = torch.nn.utils.get_total_norm([p.grad for p in params])
    assert after == pytest.approx(0.5, rel=1e-5)


def test_cli_train_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "cli"
    args = [
        "train",
        "--config",
        "synthetic",
        "--out",
        str(run),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--size",
        "32",
        "--split",
        "50/25/25",
        "--no-progress",
        "--set",
        "data.options.num_samples=8",
        "--set",
        "model.base_channels=4",
        "--set",
        "model.num_units=2",
        "--set",
        "model.timesteps=2",
        "--set",
        "model.head_dim=4",
        "--set",
        "data.num_workers=0",
        "--teacher",
        "none",
    ]
    assert main(args) == 0
    assert "done: best val mIoU" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert len(_rows(run)) == 2
    assert main(["train", "--resume", str(run), "--model", "unet"]) == 2
    assert "only --epochs" in capsys.readouterr().err


def test_early_stopping_after_patience(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = trainer_mod._Run.validate

    def flat(self, epoch):
        out = real(self, epoch)
        out["val_miou"] = 0.5  # never improves after epoch 1
        return out

    monkeypatch.setattr(trainer_mod._Run, "validate", flat)
    cfg = tiny_config(
        tmp_path / "r",
        teacher={"mode": "none"},
        train={"epochs": 10, "batch_size": 3, "progress": False, "early_stopping": 2},
    )
    result = train(cfg, log=quiet)
    assert result["stopped_early"] is True
    assert result["epochs_run"] == 3 and result["best_epoch"] == 1
    assert load_checkpoint(tmp_path / "r" / "best.pt")["epoch"] == 1
    assert load_checkpoint(tmp_path / "r" / "last.pt")["epoch"] == 3


def test_compile_failure_falls_back_to_eager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_compile(module, *args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken_compile)
    cfg = tiny_config(
        tmp_path / "r",
        teacher={"mode": "none"},
        train={"epochs": 1, "batch_size": 3, "progress": False, "compile": True},
    )
    with pytest.warns(
        UserWarning, match="torch.compile failed, training eagerly: no C\\+\\+ compiler"
    ):
        result = train(cfg, log=quiet)
    assert result["epochs_run"] == 1


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_uses_the_fused_kernel_with_plain_adam_results(name: str) -> None:
    """CPU float parameters get PyTorch's fused Adam(W); its steps equal the reference loop's."""
    cfg = load_config(overrides=tiny_config("unused", optim={"name": name, "weight_decay": 0.01}))
    model = create_model(**TINY_MODEL)
    ref = create_model(**TINY_MODEL)
    ref.load_state_dict(model.state_dict())
    opt = optim_mod.build_optimizer(model.parameters(), cfg, 1e-3)
    assert opt.defaults["fused"] is True
    plain_cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    plain = plain_cls(ref.parameters(), lr=1e-3, betas=tuple(cfg.optim.betas), weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for p, q in zip(model.parameters(), ref.parameters()):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        opt.step()
        plain.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not optim_mod.fused_ok([torch.zeros(2, dtype=torch.float64)])
    assert not optim_mod.fused_ok([])


def test_deterministic_run_sets_the_cublas_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without CUBLAS_WORKSPACE_CONFIG the first cuBLAS matmul of a deterministic CUDA run raises;
    the run sets it (keeping a value the user chose). MONAI sets it when first imported: import
    it before, so that the run cannot lean on that."""
    import monai  # noqa: F401

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cfg = tiny_config(tmp_path / "r", train={"epochs": 1, "deterministic": True, "progress": False})
    train(cfg, log=quiet)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    train(tiny_config(tmp_path / "s", train={"epochs": 1, "deterministic": True}), log=quiet)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
