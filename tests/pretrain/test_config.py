"""Pre-training configs: every shipped file loads; unknown keys and bad values are one clear error."""
from pathlib import Path

import pytest

from tasknas.pretrain.config import apply_overrides, config_from_dict, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "pretrain").glob("*.py"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.model.space.startswith("detnas_shufflenet_")


def test_overrides_go_through_the_same_checks():
    path = CONFIGS[0]
    cfg = load_config(path, {"train.epochs": 2, "sampler.type": "fair", "rank.seeds": [3, 4]})
    assert (cfg.train.epochs, cfg.sampler.type, cfg.rank.seeds) == (2, "fair", (3, 4))
    with pytest.raises(ValueError, match="sampler type 'fast' is not one of"):
        load_config(path, {"sampler.type": "fast"})
    with pytest.raises(ValueError, match="'train.epoch'.*allowed keys"):
        load_config(path, {"train.epoch": 2})


@pytest.mark.parametrize("values,message", [
    ({"modle": {}}, "unknown config key 'modle'"),
    ({"train": {"epochs": "3"}}, "'train.epochs' must be int"),
    ({"train": {"epochs": 0}}, "epochs must be >= 1"),
    ({"data": {"dataset": "cifar"}}, "dataset 'cifar' is not one of"),
    ({"sampler": {"candidates": 2, "keep": 3}}, r"keep \(3\) must be <= candidates \(2\)"),
    ({"rank": {"seeds": [1, 1]}}, "seeds must differ"),
    ({"rank": {"noise_archs": 30}}, "noise_archs must be in"),
    ({"data": {"flip": 1}}, "'data.flip' must be bool"),
])
def test_bad_values_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(values)


def test_apply_overrides_leaves_the_input_alone():
    values = {"train": {"epochs": 1}}
    out = apply_overrides(values, {"train.epochs": 5})
    assert values == {"train": {"epochs": 1}} and out["train"]["epochs"] == 5


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_config(tmp_path / "nope.py")
