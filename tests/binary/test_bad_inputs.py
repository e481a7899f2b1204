"""Nothing run, nothing silent: a diverging loss stops the job and keeps the last good checkpoint, hostile or
damaged files are refused in one line, non-finite config values are config errors."""
import hashlib
import json
import os
import pickle

import pytest
import torch

from tasknas.cli import main
from tasknas.plugins.binary import trainer
from tasknas.plugins.binary.bats import BATS_OPS
from tasknas.plugins.binary.data import ImageSet, write_cifar10
from tasknas.plugins.binary.genotype import Genotype, genotype_to_arch
from tests.binary.tiny import write_tiny

CELL = (("skip_connect", 0), ("group_conv_3x3", 1), ("max_pool_3x3", 2), ("group_conv_5x5", 0))


def _arch_file(tmp_path):
    path = tmp_path / "g.arch.json"
    path.write_text(json.dumps(genotype_to_arch(Genotype(CELL, CELL), BATS_OPS).as_dict()))
    return path


def _one_line(capsys) -> str:
    """The one error line (the progress bar shares stderr)."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("tasknas binary")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_stops_at_a_nan_loss_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # epoch 1 warms up from lr 0 (the weights do not move); epoch 2 steps with lr 1e30 and the network overflows
    config = write_tiny(tmp_path, train={"epochs": 3, "lr": 1e30, "min_lr": 0.0, "warmup_epochs": 1})
    out = tmp_path / "train"
    argv = ["binary", "train", str(config), "--arch", str(_arch_file(tmp_path)), "--out", str(out)]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert "training stopped: the loss is nan at epoch 2, step 2;" in line, line
    assert f"the last good checkpoint (epoch 1) stays at {out / trainer.TRAIN_CHECKPOINT}" in line
    assert not (out / "result.json").exists() and not (out / "model.pth").exists()
    state = trainer.load_checkpoint(out / trainer.TRAIN_CHECKPOINT)
    assert state["epoch"] == 1 and trainer.first_non_finite(state) is None
    # the stop is reproducible, and --resume stops at the same step without touching the good checkpoint
    before = _digest(out / trainer.TRAIN_CHECKPOINT)
    assert main(argv + ["--resume"]) == 2
    assert _one_line(capsys) == line and _digest(out / trainer.TRAIN_CHECKPOINT) == before


def test_weights_that_turn_non_finite_in_the_last_step_are_not_saved(tmp_path):
    state = {"model": {"a": torch.ones(2), "b": torch.tensor([1.0, float("inf")])}, "opt": {"state": {}}}
    assert trainer.first_non_finite(state) == "model.b"
    with pytest.raises(trainer.NonFiniteLossError, match=r"model.b became non-finite in the last step of epoch 3; "
                                                         r"no checkpoint was written"):
        trainer.check_finite_state(state, "training", 2, tmp_path / "none.ckpt")
    assert trainer.first_non_finite({"x": [torch.zeros(3), torch.tensor([1, 2])]}) is None


@pytest.mark.parametrize("override, message", [
    ("search.temperature.start=1e999", "'search.temperature.start' must be a finite number, got inf"),
    ("search.temperature.end=nan", "'search.temperature.end' must be a finite number, got nan"),
    ("search.temperature.end=0", "temperature end must be a finite number > 0, got 0"),
    ("search.arch_lr=-1", "arch_lr must be >= 0, got -1.0"),
    ("search.partial_channels=3", "search.partial_channels K=3 must divide model.search_channels=4"),
    ("search.cpnas.beta=-1", "cpnas.beta must be >= 0"),
    ("search.algorithm=darts", "algorithm 'darts' is not one of ['bats', 'bnas', 'cpnas']"),
    ("data.batch_size=0", "batch_size must be >= 1, got 0"),
])
def test_a_bad_config_value_is_one_line_naming_it(tmp_path, capsys, override, message):
    argv = ["binary", "search", str(write_tiny(tmp_path)), "--out", str(tmp_path / "s"), "--set", override]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert line.startswith("tasknas binary: error: ") and message in line, line
    assert not (tmp_path / "s").exists()


def test_the_search_network_refuses_a_non_finite_temperature():
    from tasknas.plugins.binary.bats import TemperatureSchedule, bats_op_set
    from tasknas.plugins.binary.darts import SearchNetwork

    with pytest.raises(ValueError, match="temperature start must be a finite number > 0, got inf"):
        TemperatureSchedule(start=float("1e999"))
    net = SearchNetwork(bats_op_set(groups=2), 1, 3, channels=4, layers=3, steps=2, stem_multiplier=1)
    net.temperature = float("1e999")
    with pytest.raises(ValueError, match="softmax temperature must be a finite number > 0, got inf"):
        net(torch.zeros(1, 1, 8, 8))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_hostile_cifar_batch_is_refused_in_one_line_without_running_it(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    images = ImageSet(torch.randint(0, 256, (10, 3, 32, 32), generator=g, dtype=torch.uint8), torch.arange(10))
    folder = write_cifar10(tmp_path / "cifar", images, images)
    marker = tmp_path / "ran"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Payload(str(marker)), b"labels": []}, protocol=2))
    config = write_tiny(tmp_path, data={"dataset": "cifar10", "root": str(tmp_path / "cifar")})
    before = _digest(folder / "data_batch_3")
    assert main(["binary", "search", str(config), "--out", str(tmp_path / "s")]) == 2
    line = _one_line(capsys)
    assert f"{folder / 'data_batch_3'}: refused: it asks for posix.mkdir, which is not plain data" in line
    assert not marker.exists() and _digest(folder / "data_batch_3") == before


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable checkpoint"),
    (b"\x00garbage" * 10, "not a readable checkpoint"),
    ("payload", "refused: it holds more than tensors and plain data"),
    ("list", "not a checkpoint of tasknas binary"),
])
def test_a_damaged_or_hostile_checkpoint_under_resume_is_one_line_and_left_alone(tmp_path, capsys, content, message):
    out = tmp_path / "t"
    out.mkdir()
    ckpt = out / trainer.TRAIN_CHECKPOINT
    marker = tmp_path / "ran"
    if content == "payload":
        torch.save({"config": _Payload(str(marker)), "epoch": 1}, ckpt)
    elif content == "list":
        torch.save([1, 2], ckpt)
    else:
        ckpt.write_bytes(content)
    before = _digest(ckpt)
    argv = ["binary", "train", str(write_tiny(tmp_path)), "--arch", str(_arch_file(tmp_path)), "--out", str(out),
            "--resume"]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert str(ckpt) in line and message in line, line
    assert not marker.exists() and _digest(ckpt) == before and not (out / "result.json").exists()
