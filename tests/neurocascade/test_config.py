from pathlib import Path

import pytest

from neurocascade.config import Config, load_config, parse_override, to_toml
from neurocascade.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["default", "demo", "test"])
def test_shipped_configs_load_and_round_trip(name, tmp_path):
    cfg = load_config(REPO / "configs" / f"{name}.toml")
    saved = tmp_path / "effective.toml"
    saved.write_text(to_toml(cfg))
    assert load_config(saved) == cfg


def test_default_is_b2_at_260():
    cfg = load_config(REPO / "configs" / "default.toml")
    assert (cfg.model.backbone, cfg.data.image_size) == ("EfficientNetB2", 260)


def test_overrides_apply_after_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nbatch_size = 4\n")
    cfg = load_config(
        path, ["train.batch_size=3", "data.clahe=true", "model.backbone=ResNet50", "audit.near_threshold=30"]
    )
    assert cfg.train.batch_size == 3 and cfg.data.clahe is True
    assert cfg.model.backbone == "ResNet50" and cfg.audit.near_threshold == 30


def test_int_is_accepted_for_float():
    assert load_config(None, ["augment.zoom=0"]).augment.zoom == 0.0


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "[trian]\nx = 1\n",
            "c.toml: unknown section [trian]; allowed: data, audit, augment, phantoms, model, train, export, eval",
        ),
        (
            "[train]\nepoch = 1\n",
            "c.toml: unknown key train.epoch; allowed: batch_size, seed, class_weight, aug_passes",
        ),
        ('[train]\nbatch_size = "8"\n', "c.toml: train.batch_size = '8': expected int, got str"),
        ("[train]\nbatch_size = 0\n", "c.toml: train.batch_size: must be in [1, 4096]"),
        ('[data]\nprotocol = "random"\n', "c.toml: data.protocol = 'random': allowed values are 'official', 'grouped'"),
        ("[data]\nval_fraction = 1.5\n", "c.toml: data.val_fraction: must be in (0, 0.5)"),
        ("[data]\ndedupe = 1\n", "c.toml: data.dedupe = 1: expected bool, got int"),
        ("[model]\nfeature_noise = -0.1\n", "c.toml: model.feature_noise: must be in [0, 10)"),
        ("[model]\ndrop_connect = 1.0\n", "c.toml: model.drop_connect: must be in [0, 1)"),
        ("[data\n", "c.toml: not valid TOML"),
    ],
)
def test_bad_files_give_one_line_naming_file_and_key(tmp_path, body, message):
    path = tmp_path / "c.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.replace(str(tmp_path) + "/", "").startswith(message)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_override("batch_size=3")
    with pytest.raises(ConfigError, match="unknown key train.nope"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")


def test_override_value_parsing():
    assert parse_override("model.weights=/tmp/w.h5") == ("model", "weights", "/tmp/w.h5")
    assert parse_override("data.clahe=false") == ("data", "clahe", False)
    assert parse_override("train.seed = 7") == ("train", "seed", 7)


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(Exception):
        cfg.train.batch_size = 2  # type: ignore[misc]
