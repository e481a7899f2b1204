"""The search and retraining loops: determinism, resume equals an uninterrupted run, the 2-stage plan."""
import json
import math

import pytest
import torch

from tasknas.core import load_arch
from tasknas.plugins.binary import trainer
from tasknas.plugins.binary.config import load_config
from tasknas.plugins.binary.genotype import arch_to_genotype
from tasknas.plugins.binary.networks import arch_space
from tests.binary.tiny import write_tiny


def _same(a, b) -> bool:
    """Exact equality of nested dicts / lists of tensors and scalars (state dicts, optimizer states)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def _interrupt_after_epoch(monkeypatch, epoch: int) -> None:
    save = trainer._save

    def save_then_stop(path, payload):
        save(path, payload)
        if path.suffix == ".ckpt" and payload["epoch"] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save", save_then_stop)


def test_search_is_deterministic_and_follows_the_two_stages(tmp_path):
    cfg = load_config(write_tiny(tmp_path))
    first = trainer.run_search(cfg, tmp_path / "a")
    second = trainer.run_search(cfg, tmp_path / "b")
    assert first["op_weights"] == second["op_weights"] and first["genotype"] == second["genotype"]
    a = torch.load(tmp_path / "a" / trainer.SEARCH_CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "b" / trainer.SEARCH_CHECKPOINT, weights_only=True)
    assert _same(a["driver"]["model"], b["driver"]["model"])
    assert [h["mode"] for h in first["history"]] == ["activations", "weights_activations"]
    assert [round(h["temperature"], 9) for h in first["history"]] == [1.0, 0.2]  # exponential 1 -> 0.2
    assert first["weight_images"] == first["held_out_images"] == 32
    arch = load_arch(tmp_path / "a" / "genotype.arch.json", arch_space(cfg.model))
    assert arch.as_dict() == first["arch"] == json.loads((tmp_path / "a" / "search.json").read_text())["arch"]
    # how far each genotype edge's op leads the runner-up in alpha, against what noise alone moves an alpha
    assert first["alpha_noise"] == pytest.approx(0.01 * math.sqrt(4 * 2), abs=1e-5)  # arch_lr * sqrt(alpha steps)
    genotype = arch_to_genotype(arch, 2)
    for kind in ("normal", "reduce"):
        leads = first["alpha_leads"][kind]
        assert len(leads) == 4 and all(v >= 0 for v in leads)
        op, source = genotype.cell(kind)[0]  # node 0, edge from `source`: softmax(alpha / T) with T = 0.2
        weights = first["op_weights"][kind][source]
        runner_up = max(w for name, w in weights.items() if name not in (op, "none"))
        assert leads[0] == pytest.approx(0.2 * math.log(weights[op] / runner_up), abs=2e-3)


def test_resumed_search_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    cfg = load_config(write_tiny(tmp_path, search={"stages": [["activations", 2], ["weights_activations", 1]]}))
    whole = trainer.run_search(cfg, tmp_path / "whole")
    _interrupt_after_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        trainer.run_search(cfg, tmp_path / "parts")
    monkeypatch.undo()
    with pytest.raises(FileExistsError, match="add --resume to continue it"):
        trainer.run_search(cfg, tmp_path / "parts")
    resumed = trainer.run_search(cfg, tmp_path / "parts", resume=True)
    assert _without_seconds(resumed["history"]) == _without_seconds(whole["history"])
    a = torch.load(tmp_path / "whole" / trainer.SEARCH_CHECKPOINT, weights_only=True)
    b = torch.load(tmp_path / "parts" / trainer.SEARCH_CHECKPOINT, weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    assert _same(a["driver"], b["driver"])


def test_resume_refuses_a_changed_config(tmp_path):
    cfg = load_config(write_tiny(tmp_path))
    trainer.run_search(cfg, tmp_path / "s")
    changed = load_config(tmp_path / "tiny.json", ["search.lr=0.5"])
    with pytest.raises(ValueError, match=r"other settings \(config.search.lr\)"):
        trainer.run_search(changed, tmp_path / "s", resume=True)


def test_resumed_training_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    cfg = load_config(write_tiny(tmp_path, train={"epochs": 3}))
    search = trainer.run_search(cfg, tmp_path / "s")
    arch = load_arch(tmp_path / "s" / "genotype.arch.json", arch_space(cfg.model))
    whole = trainer.run_train(cfg, arch, tmp_path / "whole")
    _interrupt_after_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        trainer.run_train(cfg, arch, tmp_path / "parts")
    monkeypatch.undo()
    resumed = trainer.run_train(cfg, arch, tmp_path / "parts", resume=True)
    assert (resumed["test_acc"], resumed["test_loss"]) == (whole["test_acc"], whole["test_loss"])
    assert _without_seconds(resumed["history"]) == _without_seconds(whole["history"])
    a = torch.load(tmp_path / "whole" / "model.pth", weights_only=True)
    b = torch.load(tmp_path / "parts" / "model.pth", weights_only=True)
    assert _same(a["state_dict"], b["state_dict"]) and whole["genotype"] == search["genotype"]
    with pytest.raises(ValueError, match=r"other settings \(mode\)"):
        trainer.run_train(cfg, arch, tmp_path / "parts", full_precision=True, resume=True)
