"""Export of a searched subnet, reloaded with the stock Runner from the exported config."""
import json

import onnx
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from tasknas.core import load_arch, recalibrate_bn, sample, set_arch, space_of
from tasknas.plugins.detection import evaluation
from tasknas.plugins.detection.export import export
from tests.detection.conftest import CONFIGS


def test_exported_subnet_reloads_with_the_supernets_outputs_and_trains_with_the_stock_runner(trained, tmp_path):
    cfg, weights = trained
    model = evaluation.build_detector(cfg, weights, "cpu")
    arch = sample(space_of(model), __import__("random").Random(5))
    (tmp_path / "a.arch.json").write_text(arch.to_json())
    report = export(cfg, weights, tmp_path / "a.arch.json", tmp_path / "out", calib_images=4)

    # the supernet on that arch, recalibrated the same way
    set_arch(model, arch)
    recalibrate_bn(model, evaluation.calibration_batches(cfg, 4),
                   forward=evaluation.calibration_forward)
    exported = Config.fromfile(report["config"])
    assert "ArchSamplerHook" not in str(exported.custom_hooks)
    assert exported.model.backbone.arch == arch.as_dict()
    fixed = evaluation.build_detector(exported, report["weights"], "cpu")
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
