"""Search on a real supernet trained in the stock Runner, on generated data, with the config's CocoMetric."""
import copy
import json
import shutil

import pytest
import torch

from tasknas.core import EvolutionConfig, load_arch, space_of
from tasknas.plugins.openmmlab import config, scoring
from tasknas.plugins.openmmlab.search import Limits, search
from tests.detection.conftest import CONFIGS, tiny_config

SETTINGS = dict(evolution=EvolutionConfig.preset("detnas", population=4, topk=2, mutations=1, crossovers=1,
                                                    generations=2),
             calib_images=4, progress=False)


def test_training_writes_plain_tensor_supernet_weights(trained):
    cfg, weights = trained
    payload = torch.load(weights, weights_only=True)
    model = config.build_model(cfg, weights, "cpu")
    assert set(payload["state_dict"]) == set(model.state_dict())
    assert payload["meta"]["space"] == {k: list(v) for k, v in space_of(model).items()}


def test_search_writes_results_table_plot_and_best_arch(trained, tmp_path):
    cfg, weights = trained
    result = search(cfg, weights, tmp_path, limits=Limits(macs_max=1e3), **SETTINGS)
    rows = json.loads((tmp_path / "results.json").read_text())["records"]
    assert len(rows) == len(result.records) == 8
    assert all(0.0 <= r["mAP"] <= 1.0 and r["gmacs"] > 0 and r["mparams"] > 0 for r in rows)
    assert (tmp_path / "results.csv").read_text().count("\n") == 9
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = config.build_model(cfg, weights, "cpu")
    assert load_arch(tmp_path / "best.arch.json", space_of(model)) == result.best
    assert result.best_score == max(r.score for r in result.records)


def test_interrupted_search_resumes_to_the_same_result(trained, tmp_path, monkeypatch):
    cfg, weights = trained
    full = search(cfg, weights, tmp_path / "full", **SETTINGS)
    calls = []
    real = scoring.Scorer.__call__

    def interrupted(self, arch):
        calls.append(arch)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(self, arch)

    monkeypatch.setattr(scoring.Scorer, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search(cfg, weights, tmp_path / "cut", **SETTINGS)
    monkeypatch.setattr(scoring.Scorer, "__call__", real)
    with pytest.raises(FileExistsError, match="pass resume=True"):
        search(cfg, weights, tmp_path / "cut", **SETTINGS)
    resumed = search(cfg, weights, tmp_path / "cut", resume=True, **SETTINGS)
    assert [(r.arch, r.score) for r in resumed.records] == [(r.arch, r.score) for r in full.records]


def test_bad_inputs_get_one_clear_error(trained, tmp_path, shapes_root):
    cfg, weights = trained
    with pytest.raises(ValueError, match=r"constraint macs in \[.*\] cannot be met"):
        search(cfg, weights, tmp_path / "a", limits=Limits(macs_max=1e-6), **SETTINGS)
    other = tiny_config(CONFIGS / "retinanet_detnas-large_fpn_1x_coco.py", shapes_root, tmp_path)
    with pytest.raises(ValueError, match="does not fit this config's supernet"):
        search(other, weights, tmp_path / "b", **SETTINGS)
    runner_ckpt = weights.parent / "iter_4.pth"  # plain data too (TrustedResumeRunner): its weights are the supernet's
    assert set(config.read_supernet_weights(runner_ckpt)) == set(config.read_supernet_weights(weights))
    torch.save({"state_dict": {"x": torch.zeros(1)}, "meta": {"args": __import__("argparse").Namespace(a=1)}},
               tmp_path / "pickled.pth")  # a class outside what weights_only admits
    with pytest.raises(ValueError, match="cannot be read as plain tensors"):
        search(cfg, tmp_path / "pickled.pth", tmp_path / "c", **SETTINGS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        search(cfg, tmp_path / "missing.pth", tmp_path / "d", **SETTINGS)
    empty = tmp_path / "empty"
    shutil.copytree(shapes_root, empty)
    (empty / "annotations" / "val.json").write_text(json.dumps(
        {"images": [], "annotations": [], "categories": json.loads(
            (shapes_root / "annotations" / "val.json").read_text())["categories"]}))
    cfg_empty = copy.deepcopy(cfg)
    cfg_empty.val_dataloader.dataset.data_root = str(empty)
    with pytest.raises(ValueError, match="holds no images"):
        search(cfg_empty, weights, tmp_path / "e", **SETTINGS)


def test_a_missing_dataset_names_the_path(trained, tmp_path):
    cfg, weights = trained
    missing = copy.deepcopy(cfg)
    missing.val_dataloader.dataset.data_root = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"dataset 'annotations/val.json' under '.*nowhere'"):
        search(missing, weights, tmp_path / "f", **SETTINGS)


@pytest.mark.parametrize("job", ["detnas", "nasfpn", "bifpn", "joint"])
def test_the_detection_demo_runs_end_to_end(job, tmp_path, capsys):
    from tasknas.plugins.detection.demo import run

    summary = run(tmp_path, iterations=4, population=4, generations=2, images=(16, 8, 8), job=job)
    out = capsys.readouterr().out
    assert "found arch" in out and "random arch" in out and "exported the best subnet" in out
    assert summary["candidates"] == 8 and 0.0 <= summary["best_test"] <= 1.0
    onnx_file = "backbone.onnx" if job == "detnas" else "features.onnx"
    assert (tmp_path / "export" / onnx_file).exists() and (tmp_path / "search" / "pareto.png").exists()
    assert "Config:" not in out  # the Runner's config dump is silenced in the demo
    assert "loading annotations" not in out  # nor what pycocotools prints


def test_a_latency_budget_uses_a_table_measured_on_this_device(trained, tmp_path):
    cfg, weights = trained
    result = search(cfg, weights, tmp_path / "ok", limits=Limits(latency_max=1e4), **SETTINGS)
    table = json.loads((tmp_path / "ok" / "cost_table.json").read_text())
    assert "latency" in table["options"] and table["base"]["latency"] > 0 and len(result.records) == 8
    with pytest.raises(ValueError, match=r"constraint latency in \[-inf, 1e-09\] cannot be met"):
        search(cfg, weights, tmp_path / "tight", limits=Limits(latency_max=1e-6), **SETTINGS)
