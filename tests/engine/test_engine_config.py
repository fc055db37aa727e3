"""Config loading, overrides, YAML round trip and validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from medspikeformer.cli import main
from medspikeformer.engine.config import (
    CONFIG_DIR,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_set_option,
    save_config,
    validate_config,
)
from medspikeformer.errors import ConfigError

DATASET_CONFIGS = ["isic2018", "kvasir", "busi", "monuseg", "covid19"]


@pytest.mark.parametrize("name", DATASET_CONFIGS)
def test_dataset_configs_hold_the_paper_recipe(name: str) -> None:
    cfg = load_config(name)
    assert cfg.data.dataset == name
    assert cfg.data.size == 256
    assert cfg.train.batch_size == 8
    assert cfg.model.name == "medspikeformer"
    assert cfg.model.options["timesteps"] == 4
    assert cfg.optim.name == "adam"
    assert cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.optim.weight_decay == pytest.approx(1e-5)
    assert (cfg.scheduler.name, cfg.scheduler.factor, cfg.scheduler.patience) == (
        "plateau",
        0.5,
        30,
    )
    assert cfg.train.epochs == 200
    assert cfg.train.seed == 41
    assert cfg.data.augment == "paper"
    assert cfg.teacher.mode == "joint"
    assert cfg.teacher.align.weight == 1.0


def test_every_config_file_is_valid() -> None:
    files = sorted(CONFIG_DIR.glob("*.yaml")) + sorted((CONFIG_DIR / "recipes").glob("*.yaml"))
    assert len(files) >= 7
    for path in files:
        validate_config(load_config(path), check_model=False)


def test_recipe_merges_over_dataset_config() -> None:
    base = load_config("kvasir")
    quick = load_config("kvasir", recipe="cpu-quick")
    assert quick.data.dataset == "kvasir"  # kept from the dataset config
    assert quick.data.size < base.data.size  # changed by the recipe
    assert quick.train.epochs < base.train.epochs
    assert quick.optim.weight_decay == base.optim.weight_decay  # untouched keys survive


def test_overrides_and_set_options() -> None:
    cfg = load_config(
        "kvasir",
        overrides={"train": {"epochs": 3}, "data": {"root": "/x"}},
        sets=[
            "optim.lr=3e-4",
            "teacher.align.stages=[1, 2]",
            "model.timesteps=2",
            "train.deterministic=true",
            "teacher.align.kl=paper",
        ],
    )
    assert cfg.train.epochs == 3
    assert cfg.data.root == "/x"
    assert cfg.optim.lr == pytest.approx(3e-4)  # YAML 1.1 reads "3e-4" as a string: coerced
    assert isinstance(cfg.optim.lr, float)
    assert cfg.teacher.align.stages == [1, 2]
    assert cfg.model.options["timesteps"] == 2
    assert cfg.model.options["base_channels"] == 32  # other model options kept
    assert cfg.train.deterministic is True
    assert cfg.teacher.align.kl == "paper"


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config("busi", recipe="cpu-quick", sets=["model.timesteps=2"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert config_from_dict(config_to_dict(cfg)) == cfg
    # The model section is written flat, as in the hand-written configs.
    raw = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert raw["model"]["timesteps"] == 2 and "options" not in raw["model"]


@settings(max_examples=25, deadline=None)
@given(
    epochs=st.integers(1, 10_000),
    lr=st.floats(1e-8, 1.0, allow_nan=False),
    stages=st.lists(st.integers(0, 3), max_size=4),
)
def test_set_values_are_parsed_and_typed(epochs: int, lr: float, stages: list[int]) -> None:
    cfg = load_config(
        sets=[f"train.epochs={epochs}", f"optim.lr={lr!r}", f"teacher.align.stages={stages}"]
    )
    assert cfg.train.epochs == epochs
    assert cfg.optim.lr == pytest.approx(lr)
    assert cfg.teacher.align.stages == stages


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.epochs=-3"], "train.epochs=-3"),
        (["train.batch_size=0"], "train.batch_size"),
        (["optim.lr=-1"], "optim.lr"),
        (["train.nan_policy=ignore"], "train.nan_policy"),
        (["scheduler.monitor=val_acc"], "scheduler.monitor"),
        (["teacher.mode=/no/such/file.pt"], "teacher.mode"),
        (["train.epochs=many"], "train.epochs must be an integer"),
        (["data.dataset=imagenet"], "unknown dataset 'imagenet'"),
        (["model.name=resnet50"], "resnet50"),
        (["data.size=100"], "not divisible by 8"),
        # NaN / inf at any depth: nested sections, model and loader options, lists
        (["teacher.align.weight=.nan"], r"teacher\.align\.weight=nan must be a finite"),
        (["teacher.align.weight=.inf"], r"teacher\.align\.weight=inf must be a finite"),
        (["model.head_gain=.nan"], r"model\.head_gain=nan must be a finite"),
        (["data.options.threshold=.inf"], r"data\.options\.threshold=inf must be a finite"),
    ],
)
def test_invalid_values_raise_config_error(sets: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        cfg = load_config("kvasir", sets=sets)
        validate_config(cfg)


def test_unknown_key_and_bad_set_syntax() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key train\.epoch\b"):
        load_config(sets=["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"expected key\.sub=value"):
        parse_set_option("train.epochs")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("no-such-dataset")


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: malformed YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(listy)


def test_defaults_are_valid() -> None:
    validate_config(TrainConfig(), check_model=False)


def test_cli_reports_config_errors_on_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["train", "--config", "kvasir", "--epochs", "-1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "train.epochs=-1" in err
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- --model switch


def test_model_of_another_family_drops_the_config_model_options() -> None:
    """``train --config kvasir --model unet``: the config's MedSpikeFormer options (num_units,
    timesteps …) and its joint teacher belonged to its own model, not to the U-Net."""
    config = load_config("kvasir", overrides={"model": {"name": "unet"}})
    assert config.model.name == "unet"
    assert config.model.options == {}
    assert config.teacher.mode == "auto"  # → none for the U-Net
    validate_config(config)


def test_model_switch_keeps_options_given_on_the_command_line() -> None:
    config = load_config(
        "kvasir",
        overrides={"model": {"name": "unet"}, "teacher": {"mode": "none"}},
        sets=["model.base_channels=4", "model.num_levels=2"],
    )
    assert config.model.options == {"base_channels": 4, "num_levels": 2}
    assert config.teacher.mode == "none"


def test_model_of_the_same_family_keeps_the_config_model_options() -> None:
    config = load_config("kvasir", overrides={"model": {"name": "ssa"}})
    assert config.model.options["num_units"] == 4 and config.model.options["timesteps"] == 4
    assert config.teacher.mode == "joint"


def test_cli_train_kvasir_config_with_unet(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    rc = main(
        ["train", "--config", "kvasir", "--model", "unet", "--dataset", "synthetic",
         "--size", "32", "--epochs", "1", "--batch-size", "4", "--num-workers", "0",
         "--set", "data.options.num_samples=8", "--set", "data.split_spec=50/25/25",
         "--set", "data.cache_dir=false", "--set", "model.base_channels=4",
         "--set", "model.num_levels=2", "--out", str(run), "--no-progress"]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert (run / "best.pt").is_file()
