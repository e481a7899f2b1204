"""Export of a searched subnet, reloaded with the stock Runner from the exported config."""
import json

import onnx
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from tasknas.core import EvolutionConfig, fix, load_arch, recalibrate_bn, sample, set_arch, space_of
from tasknas.plugins.openmmlab import config, scoring
from tasknas.plugins.openmmlab.export import export
from tasknas.plugins.openmmlab.search import search
from tests.detection.conftest import CONFIGS


def test_exported_subnet_reloads_with_the_supernets_outputs_and_trains_with_the_stock_runner(trained, tmp_path):
    cfg, weights = trained
    model = config.build_model(cfg, weights, "cpu")
    arch = sample(space_of(model), __import__("random").Random(5))
    (tmp_path / "a.arch.json").write_text(arch.to_json())
    report = export(cfg, weights, tmp_path / "a.arch.json", tmp_path / "out", calib_images=4)

    # the supernet on that arch, recalibrated the same way
    set_arch(model, arch)
    recalibrate_bn(model, scoring.calibration_batches(cfg, 4),
                   forward=scoring.calibration_forward)
    exported = Config.fromfile(report["config"])
    assert "ArchSamplerHook" not in str(exported.custom_hooks)
    assert exported.model.backbone.arch == arch.as_dict()
    fixed = config.build_model(exported, report["weights"], "cpu")
    assert not space_of(fixed)  # a static network
    x = torch.randn(2, 3, 128, 128)
    model.eval(), fixed.eval()
    with torch.no_grad():
        for a, b in zip(model.extract_feat(x), fixed.extract_feat(x)):
            assert torch.equal(a, b)
    assert load_arch(tmp_path / "out" / "arch.json", space_of(model)) == arch
    payload = torch.load(report["weights"], weights_only=True)
    assert payload["meta"]["arch"] == arch.as_dict()

    onnx.checker.check_model(onnx.load(report["onnx"]))
    assert report["onnx_max_abs_diff"] < 1e-4
    assert json.loads((tmp_path / "out" / "export.json").read_text())["onnx"] == report["onnx"]

    # the exported config trains (from the inherited weights) and tests with the stock Runner
    exported.work_dir = str(tmp_path / "run")
    exported.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=2)
    runner = Runner.from_cfg(exported)
    runner.train()
    metrics = runner.test()
    assert 0.0 <= metrics["coco/bbox_mAP"] <= 1.0


def test_the_published_detnas_arch_exports(trained, tmp_path):
    cfg, weights = trained
    report = export(cfg, weights, CONFIGS / "detnas_fpn_300m.arch.json", tmp_path, calib_images=2, onnx=False)
    assert json.loads((tmp_path / "arch.json").read_text())["stage0.block0"] == "k7"
    assert "onnx" not in report


def test_an_arch_of_another_space_is_refused(trained, tmp_path):
    cfg, weights = trained
    from tasknas.core import create_space

    large = sample(space_of(create_space("detnas_shufflenet_large")), __import__("random").Random(0))
    (tmp_path / "bad.json").write_text(large.to_json())
    with pytest.raises(ValueError, match=r"bad.json: arch has key\(s\) \['stage0.block4'"):
        export(cfg, weights, tmp_path / "bad.json", tmp_path / "out", calib_images=1)


def test_export_recalibrates_bn_on_the_images_the_search_scored(trained, tmp_path, monkeypatch, capsys):
    cfg, weights = trained
    seen = {}
    real = scoring.Scorer.__call__

    def recording(self, arch):  # the BN statistics each candidate was scored with
        values = real(self, arch)
        seen[arch] = {k: v.clone() for k, v in fix(self.model, arch).state_dict().items() if ".running_" in k}
        return values

    monkeypatch.setattr(scoring.Scorer, "__call__", recording)
    evolution = EvolutionConfig.preset("detnas", population=3, topk=2, mutations=1, crossovers=1, generations=1,
                                       seed=3)
    result = search(cfg, weights, tmp_path / "s", evolution=evolution, calib_images=3, progress=False)
    monkeypatch.setattr(scoring.Scorer, "__call__", real)
    settings = json.loads((tmp_path / "s" / "results.json").read_text())["settings"]
    assert (settings["seed"], settings["calib_images"], settings["split"]) == (3, 3, "val")
    assert settings["config_dump"] == "search_config.py" and "Config (path" not in json.dumps(settings)
    assert Config.fromfile(tmp_path / "s" / "search_config.py").model.backbone.type == "SearchableShuffleNetBackbone"

    report = export(cfg, weights, tmp_path / "s" / "best.arch.json", tmp_path / "e", onnx=False)
    assert (report["seed"], report["calib_images"]) == (3, 3)
    exported = torch.load(report["weights"], weights_only=True)["state_dict"]
    scored = seen[result.best]
    assert scored and all(torch.equal(exported[k], v) for k, v in scored.items())

    capsys.readouterr()
    other = export(cfg, weights, tmp_path / "s" / "best.arch.json", tmp_path / "e0", onnx=False, seed=0)
    assert "seed=0 given; the search scored with seed=3" in capsys.readouterr().out
    exported = torch.load(other["weights"], weights_only=True)["state_dict"]
    assert not all(torch.equal(exported[k], v) for k, v in scored.items())
