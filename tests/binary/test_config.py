"""Configs: schema checks with errors that name the key, overrides, the shipped config files."""
import copy
import json
from pathlib import Path

import pytest

from tasknas.plugins.binary.bats import Stage, TemperatureSchedule
from tasknas.plugins.binary.config import config_from_dict, load_config, read_config_values

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "binary"
BASE = {"data": {"dataset": "fashion_mnist"},
        "search": {"stages": [{"mode": "activations", "epochs": 1}, ["weights_activations", 2]],
                   "temperature": {"start": 2, "kind": "linear"}}}


def test_a_config_is_built_from_sections_with_defaults():
    cfg = config_from_dict(BASE)
    assert cfg.search.stages == (Stage("activations", 1), Stage("weights_activations", 2)) and cfg.search.epochs == 3
    assert cfg.search.temperature == TemperatureSchedule(2.0, 0.2, "linear")
    assert cfg.model.op_set == "bats" and cfg.seed == 0 and cfg.data.root is None
    assert config_from_dict(cfg.to_dict()) == cfg


def test_builders_do_not_modify_the_given_dict():
    given = copy.deepcopy(BASE)
    config_from_dict(given)
    assert given == BASE


@pytest.mark.parametrize("values, message", [
    ({**BASE, "sead": 1}, "unknown config key 'sead'; allowed keys: ['data', 'model', 'search', 'train', 'seed']"),
    ({"data": {"dataset": "fashion_mnist", "batchsize": 8}}, "unknown config key 'data.batchsize'; allowed keys in "
                                                            "data: ['dataset', 'root'"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"temperature": {"begin": 1}}},
     "unknown config key 'search.temperature.begin'; allowed keys in search.temperature: ['start', 'end', 'kind']"),
    ({"data": {}}, "config key data.dataset is missing"),
    ({"data": {"dataset": "mnist"}}, "dataset 'mnist' is not one of ['fashion_mnist', 'cifar10']"),
    ({"data": {"dataset": "cifar10"}}, "data.root must be the folder that holds cifar-10-batches-py"),
    ({"data": {"dataset": "fashion_mnist", "batch_size": "64"}}, "config key 'data.batch_size' must be int, got '64'"),
    ({"data": {"dataset": "fashion_mnist", "batch_size": 0}}, "batch_size must be >= 1, got 0"),
    ({"data": {"dataset": "fashion_mnist"}, "model": {"binary_preprocess": 1}},
     "config key 'model.binary_preprocess' must be bool, got 1"),
    ({"data": {"dataset": "fashion_mnist"}, "train": {"mode": "xnor"}}, "mode 'xnor' is not one of ['real'"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"stages": [["binary", 2]]}}, "stage mode 'binary'"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"arch_betas": [0.5]}},
     "config key 'search.arch_betas' must be a list of 2 values, got [0.5]"),
    ({"data": {"dataset": "fashion_mnist"}, "model": {"layers": 2}}, "layers must be >= 3, got 2"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"algorithm": "darts"}},
     "algorithm 'darts' is not one of ['bats', 'bnas', 'cpnas']"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"partial_channels": 3}},
     "search.partial_channels K=3 must divide model.search_channels=16"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"partial_channels": 8}},
     "model.groups=4 must divide the 2 channels each op sees"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"cpnas": {"beta": -0.5}}}, "cpnas.beta must be >= 0"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"temperature": {"start": float("inf")}}},
     "config key 'search.temperature.start' must be a finite number, got inf"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"lr": float("nan")}},
     "config key 'search.lr' must be a finite number, got nan"),
    ({"data": {"dataset": "fashion_mnist"}, "search": {"reduction": {"score": "lcb"}}}, "score 'lcb' is not one of"),
])
def test_bad_configs_name_the_key_and_what_was_expected(values, message):
    with pytest.raises(ValueError) as info:
        config_from_dict(values)
    assert message in str(info.value)


def test_python_and_json_configs_load_alike_and_take_overrides(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(BASE))
    (tmp_path / "c.py").write_text("_helper = 3\n" + "\n".join(f"{k} = {v!r}" for k, v in BASE.items()))
    assert load_config(tmp_path / "c.json") == load_config(tmp_path / "c.py")
    cfg = load_config(tmp_path / "c.py", ["search.lr=0.5", "data.root=/data/fm", "search.temperature.kind=cosine",
                                          "seed=7", "data.train_subset=None"])
    assert (cfg.search.lr, cfg.data.root, cfg.search.temperature.kind, cfg.seed) == (0.5, "/data/fm", "cosine", 7)
    with pytest.raises(ValueError, match=r"c.py: unknown config key 'search.lrr'"):
        load_config(tmp_path / "c.py", ["search.lrr=0.5"])
    with pytest.raises(ValueError, match="override 'seed' must be KEY=VALUE"):
        load_config(tmp_path / "c.py", ["seed"])
    with pytest.raises(ValueError, match="must end in .py or .json"):
        load_config(_touch(tmp_path / "c.yaml"))
    for text in ("1e999", "nan"):  # mmengine parses these as floats; the schema refuses them
        with pytest.raises(ValueError, match=r"search.temperature.start' must be a finite number"):
            load_config(tmp_path / "c.py", [f"search.temperature.start={text}"])
    (tmp_path / "broken.py").write_text("data = dict(dataset='fashion_mnist'\n")
    with pytest.raises(ValueError, match=r"broken.py: syntax error at line"):
        load_config(tmp_path / "broken.py")


def test_a_base_config_is_inherited_through_mmengine(tmp_path):
    (tmp_path / "base.py").write_text("data = dict(dataset='fashion_mnist', batch_size=8)\nseed = 3\n")
    (tmp_path / "child.py").write_text("_base_ = ['base.py']\ndata = dict(batch_size=16)\n")
    assert read_config_values(tmp_path / "child.py") == {"data": {"dataset": "fashion_mnist", "batch_size": 16},
                                                         "seed": 3}


def _touch(path: Path) -> Path:
    path.write_text("")
    return path


def test_shipped_configs_load():
    fm = load_config(CONFIGS / "bats_fashion_mnist.py")
    assert fm.data.dataset == "fashion_mnist" and fm.data.root is None  # the system folder, then the cache
    assert [s.mode for s in fm.search.stages] == ["activations", "weights_activations"]
    with pytest.raises(ValueError, match="data.root must be the folder that holds cifar-10-batches-py"):
        load_config(CONFIGS / "bats_cifar10.py")
    cifar = load_config(CONFIGS / "bats_cifar10.py", ["data.root=/data/cifar"])
    assert cifar.data.root == "/data/cifar" and cifar.model.steps == 4 and cifar.model.stem_stride == 1
