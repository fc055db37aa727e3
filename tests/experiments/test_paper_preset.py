"""The paper's network stays one name away: the default is integer spikes, the ``paper``
presets and the rows of the paper's tables pin the binary LIF and train it from scratch."""

from __future__ import annotations

import pytest

from medspikeformer import create_model
from medspikeformer.engine.config import load_config
from medspikeformer.experiments.rows import ABLATION_ROWS, COMPARE_ROWS
from medspikeformer.models import PAPER_NETWORK


def test_the_default_network_has_integer_spikes_and_the_baselines_keep_the_lif() -> None:
    assert create_model("medspikeformer").config["neuron"] == "ilif"
    for name in ("ssa", "sdt", "qk", "medspikeformer_wo_sdsa", "medspikeformer_wo_sc"):
        assert create_model(name, base_channels=8).config["neuron"] == "lif", name


@pytest.mark.parametrize("recipe", ["paper", "cpu-paper", "cpu-monuseg"])
def test_paper_recipes_pin_the_paper_network_from_scratch(recipe: str) -> None:
    cfg = load_config("kvasir", recipe=recipe)
    assert {k: cfg.model.options[k] for k in PAPER_NETWORK} == PAPER_NETWORK
    assert cfg.train.init_from is None
    net = create_model(cfg.model.name, **{**cfg.model.options, "base_channels": 8})
    assert net.config["neuron"] == "lif"


def test_the_cpu_recipe_is_integer_spikes_from_the_twin() -> None:
    cfg = load_config("kvasir", recipe="cpu")
    assert cfg.model.options["neuron"] == "ilif" and cfg.model.options["head"] == "spike"
    assert cfg.train.init_from == "twin"


def test_rows_of_the_paper_tables_train_the_paper_network() -> None:
    paper_rows = [COMPARE_ROWS[0], *(r for r in ABLATION_ROWS if r.key != "ilif")]
    for row in paper_rows:
        assert {k: row.model_overrides[k] for k in PAPER_NETWORK} == PAPER_NETWORK, row.key
        assert row.train_overrides["train.init_from"] is None, row.key
    ilif = [r for r in (*COMPARE_ROWS, *ABLATION_ROWS) if r.key in ("ilif", "medspikeformer_ilif")]
    assert len(ilif) == 2 and all(r.model_overrides["neuron"] == "ilif" for r in ilif)


def test_under_the_cpu_recipe_the_paper_row_drops_the_twin_stage(tmp_path) -> None:
    from medspikeformer.experiments.rows import compare_rows
    from medspikeformer.experiments.runner import ExperimentSpec, base_config, resolve_row_config

    spec = ExperimentSpec("compare", "kvasir", out=tmp_path, recipe="cpu", data_root="unused")
    shared = base_config(spec)
    by = {r.key: r for r in compare_rows()}
    paper = resolve_row_config(spec, by["medspikeformer"], 0, tmp_path / "a", shared)
    ilif = resolve_row_config(spec, by["medspikeformer_ilif"], 0, tmp_path / "b", shared)
    assert paper.model.options["neuron"] == "lif" and paper.train.init_from is None
    assert ilif.model.options["neuron"] == "ilif" and ilif.train.init_from == "twin"


def test_cpu_paper_is_the_former_cpu_recipe_with_the_lif_pinned() -> None:
    """``cpu-paper`` resolves to what ``cpu`` resolved to before integer spikes became the
    default (the recipe of the "Where we stand" figures; its values as they were shipped), so
    those figures still come from one command."""
    from medspikeformer.engine.config import (
        config_from_dict,
        config_to_dict,
        find_config_file,
        merge_dicts,
        read_yaml,
    )

    former = {
        "model": {"base_channels": 8, "timesteps": 2, "head_gain": 4.0, "v_threshold": 0.5,
                  "n_kv": 256, "neuron": "lif", "head": "spike"},
        "data": {"size": 64, "augment": "strong", "num_workers": 0},
        "optim": {"lr": 2.0e-3},
        "scheduler": {"name": "cosine"},
        "train": {"epochs": 100, "batch_size": 8},
    }  # fmt: skip
    base = read_yaml(find_config_file("kvasir", "config"))
    expected = config_to_dict(config_from_dict(merge_dicts(base, former)))
    assert config_to_dict(load_config("kvasir", recipe="cpu-paper")) == expected
