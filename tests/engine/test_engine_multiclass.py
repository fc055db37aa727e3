"""``data.labels`` in a config: it sets the model's classes, drives the K-class loss and the
categorical alignment of the training step, and disagreeing settings fail on one line."""

from __future__ import annotations

import pytest
import torch

from medspikeformer.engine import TrainingStep
from medspikeformer.engine.config import build_model_from_config, config_from_dict
from medspikeformer.errors import ConfigError
from medspikeformer.losses import BCEDiceLoss, MultiClassDiceLoss
from reliability.helpers import assert_user_error, run_main
from tiny_models import TINY_MSF

LABELS = {"background": 0, "benign": 1, "malignant": 2}


def _config(**data):
    return {
        "model": {"name": "medspikeformer", **TINY_MSF},
        "data": {"size": 32, **data},
        "train": {"device": "cpu"},
    }


def test_labels_set_num_classes_and_the_step_trains() -> None:
    step = TrainingStep.from_config(_config(labels=LABELS))
    assert step.student.num_classes == 3 and step.teacher.num_classes == 3
    assert isinstance(step.seg_loss, MultiClassDiceLoss)
    assert step.align_loss.activation == "softmax"
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(2, 3, 32, 32, generator=g),
        "mask": torch.randint(0, 3, (2, 1, 32, 32), generator=g).float(),
    }
    before = [p.detach().clone() for p in step.student.parameters()]
    terms = step(batch)
    assert step.last_verdict.applied and torch.isfinite(terms["total"])
    assert float(terms["align_kl"].detach()) >= 0.0
    assert any(not torch.equal(a, b) for a, b in zip(before, step.student.parameters()))


def test_regions_make_a_multilabel_model() -> None:
    regions = {"whole": [1, 2], "core": [2]}
    model = build_model_from_config(config_from_dict(_config(labels=regions)))
    assert model.num_classes == 2 and model.multilabel and model.activation == "sigmoid"


def test_binary_config_keeps_the_binary_loss() -> None:
    step = TrainingStep.from_config(_config())
    assert type(step.seg_loss) is BCEDiceLoss and step.align_loss.activation == "sigmoid"


def test_num_classes_disagreeing_with_labels_is_a_config_error() -> None:
    cfg = _config(labels=LABELS)
    cfg["model"]["num_classes"] = 2
    with pytest.raises(ConfigError, match=r"model\.num_classes=2 disagrees with data\.labels"):
        build_model_from_config(config_from_dict(cfg))


def test_cli_bad_labels_one_error_line(capsys) -> None:
    args = ["train", "--config", "busi-3class", "--set", "data.labels={a: 0, b: 0}"]
    result = run_main([*args, "--set", "data.dataset=synthetic"], capsys)
    assert_user_error(result, "data.labels", "id 0 is given to both")
