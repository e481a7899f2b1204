"""Train → search → export inside MMSegmentation, on a real supernet trained in the stock Runner on generated
masks: cost tables against FlopCounterMode, the held-out search split, resume, the exported subnet in the
stock Runner, ONNX, and bad input."""
import json
import random
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from tasknas.core import (
    EvolutionConfig,
    count_flops,
    count_params,
    fix,
    load_arch,
    recalibrate_bn,
    sample,
    set_arch,
    space_of,
)
from tasknas.core.cost import ForwardModule
from tasknas.core.subnet import save_weights
from tasknas.plugins.openmmlab import config, scoring
from tasknas.plugins.openmmlab.export import export
from tasknas.plugins.openmmlab.search import Limits, search
from tasknas.plugins.segmentation.task import SEGMENTATION, dummy_sample
from tests.segmentation.conftest import CELLS, SIZE, tiny_config

EVOLUTION = EvolutionConfig.preset("detnas", population=4, topk=2, mutations=1, crossovers=1, generations=2)
SETTINGS = dict(evolution=EVOLUTION, calib_images=4, progress=False)


@pytest.fixture(scope="module")
def cells(seg_root, tmp_path_factory) -> tuple[Config, Path]:
    """(tiny decoder-cell config, its supernet's initial weights as plain tensors): a search needs no training."""
    work = tmp_path_factory.mktemp("cells")
    cfg = tiny_config(CELLS, seg_root, work)
    save_weights(work / "supernet.pth", config.build_model(cfg, device="cpu"))
    return cfg, work / "supernet.pth"


def _whole_flops(model, size: int) -> int:
    x = torch.zeros(1, 3, size, size)
    return count_flops(ForwardModule(model, lambda m, inp: m(inp, [dummy_sample(size, size)], mode="tensor")), x)


@pytest.mark.parametrize("which", ["trained", "cells"])  # joint DetNAS + ASPP; decoder cells on a fixed encoder
def test_cost_table_equals_flop_counter_on_the_fixed_segmentor_at_the_crop_size(which, request):
    cfg = request.getfixturevalue(which)[0]
    model = config.build_model(cfg, device="cpu").eval()
    size = SEGMENTATION.input_size(cfg)
    assert size == (SIZE, SIZE)
    table = scoring.model_cost_table(model, size, task=SEGMENTATION)
    rng = random.Random(0)
    for _ in range(3):
        arch = sample(space_of(model), rng)
        fixed = fix(model, arch).eval()
        assert table.flops(arch) == _whole_flops(fixed, SIZE)
        assert table.params(arch) == count_params(fixed)


def test_search_on_the_held_out_split_export_and_the_stock_runner(trained, tmp_path):
    cfg, weights = trained
    result = search(cfg, weights, tmp_path / "search", split="heldout", limits=Limits(macs_max=1e3), **SETTINGS)
    saved = json.loads((tmp_path / "search" / "results.json").read_text())
    assert saved["settings"]["split"] == "heldout" and saved["settings"]["metric"] == "mIoU"
    assert len(saved["records"]) == len(result.records) == 8
    assert all(0.0 <= r["mIoU"] <= 100.0 and r["gmacs"] > 0 for r in saved["records"])
    assert result.best_score == max(r.score for r in result.records)
    # unrounded: scores carry more than mmseg's two decimals
    assert any(round(r.score, 2) != r.score for r in result.records)
    # the config's own IoUMetric (numpy values, two decimals), as the demo scores the test split, agrees
    model = config.build_model(cfg, weights, "cpu")
    calibration = scoring.calibration_batches(cfg, 4, seed=0)
    stock = scoring.Scorer(cfg, model, calibration, split="val", search_metric=False)(result.best)
    unrounded = scoring.Scorer(cfg, model, calibration, split="val")(result.best)
    assert stock["score"] == pytest.approx(round(unrounded["score"], 2), abs=0.011)

    report = export(cfg, weights, tmp_path / "search" / "best.arch.json", tmp_path / "export")
    assert (report["seed"], report["calib_images"]) == (EVOLUTION.seed, 4)
    model = config.build_model(cfg, weights, "cpu")
    set_arch(model, result.best)
    recalibrate_bn(model, scoring.calibration_batches(cfg, 4, seed=EVOLUTION.seed), forward=scoring.calibration_forward)
    exported = Config.fromfile(report["config"])
    assert "ArchSamplerHook" not in str(exported.custom_hooks)
    assert exported.model.decode_head.arch == {k: v for k, v in result.best.as_dict().items() if k.startswith("head.")}
    fixed = config.build_model(exported, report["weights"], "cpu")
    assert not [k for k, v in space_of(fixed).items() if len(v) > 1]  # a static network
    x = torch.randn(2, 3, SIZE, SIZE)
    model.eval(), fixed.eval()
    with torch.no_grad():
        assert torch.equal(model(x, mode="tensor"), fixed(x, mode="tensor"))
    assert load_arch(tmp_path / "export" / "arch.json", space_of(model)) == result.best
    assert report["onnx"].endswith("segmentor.onnx") and report["onnx_max_abs_diff"] < 1e-4

    exported.work_dir = str(tmp_path / "run")
    exported.train_cfg = dict(type="IterBasedTrainLoop", max_iters=1, val_interval=1)
    runner = Runner.from_cfg(exported)
    runner.train()
    metrics = runner.test()
    assert 0.0 <= metrics["mIoU"] <= 100.0


def test_an_interrupted_search_resumes_to_the_same_result(cells, tmp_path, monkeypatch):
    cfg, weights = cells
    full = search(cfg, weights, tmp_path / "full", **SETTINGS)
    calls = []
    real = scoring.Scorer.__call__

    def interrupted(self, arch):
        calls.append(arch)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, arch)

    monkeypatch.setattr(scoring.Scorer, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search(cfg, weights, tmp_path / "cut", **SETTINGS)
    monkeypatch.setattr(scoring.Scorer, "__call__", real)
    resumed = search(cfg, weights, tmp_path / "cut", resume=True, **SETTINGS)
    assert [(r.arch, r.score) for r in resumed.records] == [(r.arch, r.score) for r in full.records]


def test_bad_inputs_get_one_clear_error(trained, cells, tmp_path):
    cfg, weights = trained
    missing = Config(cells[0].to_dict())
    missing.val_dataloader.dataset.data_root = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"nowhere.*img_dir/val' does not exist"):
        search(missing, cells[1], tmp_path / "a", **SETTINGS)
    with pytest.raises(ValueError, match="does not fit this config's supernet"):
        search(cells[0], weights, tmp_path / "b", **SETTINGS)
    from tasknas.core import create_space

    backbone_arch = sample(space_of(create_space("detnas_shufflenet_small")), random.Random(0))
    (tmp_path / "other.json").write_text(backbone_arch.to_json())
    with pytest.raises(ValueError, match=r"other.json: arch"):
        export(cfg, weights, tmp_path / "other.json", tmp_path / "c", calib_images=1, onnx=False)


def test_the_segmentation_demo_runs_end_to_end_and_scores_the_test_split_with_iou_metric(tmp_path, capsys):
    from tasknas.plugins.segmentation.demo import run

    summary = run(tmp_path, iterations=4, population=4, generations=2, images=(16, 8, 8))
    out = capsys.readouterr().out
    assert "found arch" in out and "random arch" in out and "exported the best subnet" in out
    assert summary["candidates"] == 8  # population x generations, as the demo announces
    assert 0.0 <= summary["best_test"] <= 100.0 and 0.0 <= summary["random_test"] <= 100.0
    assert (tmp_path / "export" / "segmentor.onnx").exists() and (tmp_path / "search" / "pareto.png").exists()
    assert "Config:" not in out
