"""`tasknas binary search` then `tasknas binary train`, end to end on tiny generated IDX data; CLI errors."""
import json

import torch

from tasknas.cli import main
from tasknas.core import load_arch
from tasknas.plugins.binary.bats import BATS_OPS
from tasknas.plugins.binary.config import load_config
from tasknas.plugins.binary.data import Normalizer, load_fashion_mnist, split_indices
from tasknas.plugins.binary.genotype import Genotype, arch_to_genotype, genotype_to_arch
from tasknas.plugins.binary.networks import arch_space, build_fixed_network
from tasknas.plugins.binary.trainer import evaluate
from tests.binary.tiny import write_tiny


def test_search_then_train_binary_and_full_precision(tmp_path, capsys):
    config = write_tiny(tmp_path)
    assert main(["binary", "search", str(config), "--out", str(tmp_path / "s"), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    arch_file = tmp_path / "s" / "genotype.arch.json"
    cfg = load_config(config)
    arch = load_arch(arch_file, arch_space(cfg.model))
    assert f"genotype: {arch_to_genotype(arch, cfg.model.steps)}" in out and str(arch_file) in out
    assert " of 8 genotype edges lead the runner-up op by less than the noise scale arch_lr*sqrt(alpha steps) = " \
           "0.0283" in out

    results = {}
    for extra, folder in (([], "train"), (["--full-precision"], "train_fp")):
        argv = ["binary", "train", str(config), "--arch", str(arch_file), "--out", str(tmp_path / folder), *extra]
        assert main(argv) == 0
        results[folder] = result = json.loads((tmp_path / folder / "result.json").read_text())
        assert f"test accuracy {result['test_acc']:.4f}" in capsys.readouterr().out
        assert result["arch"] == arch.as_dict() and result["test_images"] == 40 and result["epochs"] == 2
    assert results["train"]["mode"] == "weights_activations" and results["train"]["binary_weights"] > 0
    assert results["train_fp"]["mode"] == "real" and results["train_fp"]["binary_weights"] == 0
    assert results["train"]["params"] == results["train_fp"]["params"]  # the twin has the same structure

    # the saved binary model reproduces its reported test accuracy
    payload = torch.load(tmp_path / "train" / "model.pth", weights_only=True)
    data = load_fashion_mnist(cfg.data.root)
    model = build_fixed_network(cfg.model, arch_to_genotype(arch, cfg.model.steps), payload["mode"], 1, 10)
    model.load_state_dict(payload["state_dict"])
    norm = Normalizer.of(data.train.take(split_indices(len(data.train), cfg.data.train_subset, cfg.seed)).images)
    assert evaluate(model, data.test, 32, norm) == (results["train"]["test_loss"], results["train"]["test_acc"])


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_bad_config_key_is_one_clear_error(tmp_path, capsys):
    config = write_tiny(tmp_path, model={"group": 2})
    assert main(["binary", "search", str(config)]) == 2
    line = _error(capsys)
    assert line.startswith("tasknas binary: error: ") and "unknown config key 'model.group'" in line
    assert "allowed keys in model: ['op_set', 'groups'" in line
    assert main(["binary", "search", str(write_tiny(tmp_path)), "--set", "search.temperature.kind=step"]) == 2
    assert "temperature kind 'step' is not one of ['constant', 'linear', 'exponential', 'cosine']" in _error(capsys)


def test_an_arch_that_does_not_fit_the_config_is_one_clear_error(tmp_path, capsys):
    config = write_tiny(tmp_path)
    cell = (("skip_connect", 0), ("group_conv_3x3", 1), ("max_pool_3x3", 2), ("skip_connect", 0))
    arch = genotype_to_arch(Genotype(cell, cell), BATS_OPS).as_dict()
    (tmp_path / "bad.json").write_text(json.dumps({**arch, "normal.node0.edge0.op": "sep_conv_3x3"}))
    assert main(["binary", "train", str(config), "--arch", str(tmp_path / "bad.json"), "--out", str(tmp_path)]) == 2
    line = _error(capsys)
    assert "bad.json: arch key 'normal.node0.edge0.op' has option 'sep_conv_3x3'; allowed options are " in line
    (tmp_path / "short.json").write_text(json.dumps(arch))  # 2 nodes per cell, the config says 3
    assert main(["binary", "train", str(config), "--arch", str(tmp_path / "short.json"), "--set", "model.steps=3"]) == 2
    assert "arch is missing key(s) ['normal.node2.edge0.input'" in _error(capsys)


def test_missing_data_names_the_folders_and_the_fetch_script(tmp_path, capsys):
    config = write_tiny(tmp_path, data={"root": str(tmp_path / "nowhere")})
    assert main(["binary", "search", str(config), "--out", str(tmp_path / "s")]) == 2
    line = _error(capsys)
    assert str(tmp_path / "nowhere") in line and "scripts/fetch_fashion_mnist.sh" in line


def test_interrupt_prints_the_resume_hint(tmp_path, capsys, monkeypatch):
    from tasknas.plugins.binary import trainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "run_search", interrupted)
    assert main(["binary", "search", str(write_tiny(tmp_path))]) == 130
    assert "with --resume to continue" in capsys.readouterr().err


def test_binary_help_and_unknown_job(capsys):
    assert main(["binary", "--help"]) == 0 and "tasknas binary {search,train}" in capsys.readouterr().out
    assert main(["binary", "retrain"]) == 2
    assert "unknown command 'retrain'; expected one of ['search', 'train']" in capsys.readouterr().err
