"""Pre-training: bit-identical resume, every sampler end to end, atomic per-epoch checkpoints, bad input."""
import json

import pytest
import torch

from tasknas.pretrain.model import FORMAT, load_supernet
from tasknas.pretrain.trainer import CHECKPOINT, SUPERNET, pretrain
from tests.pretrain.tiny import tiny_config


class Stop(Exception):
    pass


def _stop_at(epoch, step):
    def hook(e, s, paths, model):
        if (e, s) == (epoch, step):
            raise Stop

    return hook


@pytest.mark.parametrize("sampler", ["uniform", "greedy"])
def test_resume_continues_bit_identically(tmp_path, sampler):
    cfg = tiny_config(sampler={"type": sampler, "candidates": 3, "keep": 2, "greedy_images": 16,
                               "greedy_batch": 8})
    whole = []
    pretrain(cfg, tmp_path / "whole", on_step=lambda e, s, p, m: whole.append([a.as_dict() for a in p]))
    with pytest.raises(Stop):  # interrupted in the second epoch: the first epoch's checkpoint is on disk
        pretrain(cfg, tmp_path / "cut", on_step=_stop_at(1, 1))
    assert torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["epoch"] == 1
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(cfg, tmp_path / "cut")
    resumed = []
    pretrain(cfg, tmp_path / "cut", resume=True, on_step=lambda e, s, p, m: resumed.append([a.as_dict() for a in p]))
    assert resumed == whole[len(whole) - len(resumed):] and len(resumed) == len(whole) // 2
    a = torch.load(tmp_path / "whole" / CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["paths"] == b["paths"]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_resume_refuses_other_settings(tmp_path):
    pretrain(tiny_config(train={"epochs": 1}), tmp_path)
    with pytest.raises(ValueError, match="other settings"):
        pretrain(tiny_config(train={"epochs": 1, "lr": 0.01}), tmp_path, resume=True)


@pytest.mark.parametrize("sampler,passes_per_step", [("flops", 1), ("fair", 4), ("greedy", 2)])
def test_each_sampler_trains_its_number_of_paths_per_step(tmp_path, sampler, passes_per_step):
    cfg = tiny_config(train={"epochs": 1}, sampler={"type": sampler, "num_bins": 3, "candidates": 3, "keep": 2,
                                                    "greedy_images": 16, "greedy_batch": 8})
    steps = []
    summary = pretrain(cfg, tmp_path, on_step=lambda e, s, p, m: steps.append(len(p)))
    assert steps == [passes_per_step] * len(steps) and summary["path_passes"] == passes_per_step * len(steps)
    payload = torch.load(tmp_path / SUPERNET, weights_only=True)
    assert payload["format"] == FORMAT and payload["meta"]["sampler"] == sampler
    written = json.loads((tmp_path / "pretrain.json").read_text())
    assert written["sampler"] == sampler and written["steps"] == len(steps)
    if sampler == "greedy":
        assert summary["greedy_evaluated"] == 3 * len(steps)


def test_transfer_checkpoint_rebuilds_the_classifier_exactly(tmp_path):
    pretrain(tiny_config(train={"epochs": 1}), tmp_path)
    model, payload = load_supernet(tmp_path / SUPERNET)
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert model.state_dict().keys() == ckpt["model"].keys()
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in model.state_dict().items())
    assert payload["space"] == "detnas_shufflenet_fmnist" and payload["meta"]["epochs"] == 1


def test_a_non_finite_loss_stops_before_the_step_and_writes_nothing(tmp_path):
    with pytest.raises(FloatingPointError, match="not finite"):
        pretrain(tiny_config(train={"epochs": 1, "lr": 1e30, "grad_clip": None}), tmp_path)
    assert not (tmp_path / CHECKPOINT).exists() and not (tmp_path / SUPERNET).exists()
