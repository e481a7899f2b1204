"""Neck search (NAS-FPN, BiFPN) and joint backbone + neck search, end to end in the stock Runner: supernet
training, search, export, and the exported config training with stock mmdet — from the project's configs,
on generated data."""
import json
import random

import onnx
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tasknas.core import (
    Choice,
    EvolutionConfig,
    choices_of,
    fix,
    is_fixed,
    load_arch,
    recalibrate_bn,
    sample,
    set_arch,
    space_of,
)
from tasknas.plugins.openmmlab import config, scoring
from tasknas.plugins.openmmlab.export import export
from tasknas.plugins.openmmlab.hooks import unwrap
from tasknas.plugins.openmmlab.search import search
from tasknas.plugins.openmmlab.training import train
from tests.detection.conftest import CONFIGS, tiny_config

SHAPES = {
    "nasfpn": CONFIGS / "retinanet_r18-tiny_nasfpn-search_shapes.py",
    "bifpn": CONFIGS / "retinanet_r18-tiny_bifpn-search_shapes.py",
    "joint": CONFIGS / "retinanet_detnas-demo_nasfpn-search_shapes.py",
}
COCO = {
    "nasfpn": CONFIGS / "retinanet_r50_nasfpn-search_crop640_coco.py",
    "bifpn": CONFIGS / "retinanet_effb0_bifpn-search_coco.py",
    "joint": CONFIGS / "retinanet_detnas-small_nasfpn-search_coco.py",
}
SETTINGS = dict(evolution=EvolutionConfig.preset("detnas", population=4, topk=2, mutations=1, crossovers=1,
                                                    generations=2),
             calib_images=4, progress=False)


class UnusedWeightsWatch(Hook):
    """Around every iteration: the weights the sampled arch's fixed subnet does not hold stay bit-identical."""

    priority = "LOW"  # after ArchSamplerHook has activated the iteration's arch

    def __init__(self):
        self.checked = self.frozen = 0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = unwrap(runner.model)
        kept = set(fix(model, {c.key: c.active for c in choices_of(model)}).state_dict())
        used = {n for n, _ in model.named_parameters() if _subnet_name(model, n) in kept}
        self.before = {n: p.detach().clone() for n, p in model.named_parameters() if n not in used}
        self.used = [(p, p.detach().clone()) for n, p in model.named_parameters() if n in used]

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        params = dict(unwrap(runner.model).named_parameters())
        for name, value in self.before.items():
            assert torch.equal(params[name].detach(), value), f"{name} changed off the path"
        assert any(not torch.equal(p.detach(), v) for p, v in self.used)
        self.checked += 1
        self.frozen += len(self.before)


def _subnet_name(model, name):
    """The name a supernet tensor has in the fixed subnet (module choices lose ``.candidates.<option>``), or
    None when it belongs to an option that is not active."""
    for path, module in model.named_modules():
        if isinstance(module, Choice) and module.holds_modules and name.startswith(f"{path}.candidates."):
            active = f"{path}.candidates.{module.active}."
            return f"{path}.{name[len(active):]}" if name.startswith(active) else None
    return name


@pytest.fixture(scope="module", params=sorted(SHAPES))
def trained_neck(request, shapes_root, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"supernet_{request.param}")
    cfg = tiny_config(SHAPES[request.param], shapes_root, work, iters=3)
    train(cfg, work)
    return request.param, cfg, work / "supernet.pth"


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_neck_supernet_trains_in_the_stock_runner_leaving_unused_weights_untouched(name, shapes_root, tmp_path):
    cfg = tiny_config(SHAPES[name], shapes_root, tmp_path, iters=3)
    runner = Runner.from_cfg(cfg)
    watch = UnusedWeightsWatch()
    runner.register_hook(watch)
    runner.train()
    assert watch.checked == 3
    if name == "bifpn":  # dropped layers, fusion weights and adapters exist only in the supernet
        assert watch.frozen > 0


def test_neck_search_export_and_the_exported_config_in_the_stock_runner(trained_neck, tmp_path):
    name, cfg, weights = trained_neck
    result = search(cfg, weights, tmp_path / "search", **SETTINGS)
    assert len(result.records) == 8
    assert (tmp_path / "search" / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gates = json.loads((tmp_path / "search" / "cost_table.json").read_text())["gates"]
    if name == "bifpn":  # the choices of layers 1 and 2 count only while the depth keeps those layers
        assert all(g == ["neck.depth", [2, 3]] for k, g in gates.items() if k.startswith("neck.layer1."))
        assert all(g == ["neck.depth", [3]] for k, g in gates.items() if k.startswith("neck.layer2."))
        assert len(gates) == 16 and not any(k.startswith("neck.layer0.") for k in gates)
    else:
        assert gates == {}
    model = config.build_model(cfg, weights, "cpu")
    space = space_of(model)
    keys = set(space)
    assert all(k.startswith("neck.") or (name == "joint" and k.startswith("backbone.")) for k in keys)
    if name == "joint":
        assert any(k.startswith("backbone.") for k in keys) and any(k.startswith("neck.") for k in keys)
    arch = load_arch(tmp_path / "search" / "best.arch.json", space)

    report = export(cfg, weights, tmp_path / "search" / "best.arch.json", tmp_path / "export", calib_images=4)
    exported = Config.fromfile(report["config"])
    assert exported.model.neck.arch == {k: v for k, v in arch if k.startswith("neck.")}
    if name == "joint":
        assert exported.model.backbone.arch == {k: v for k, v in arch if k.startswith("backbone.")}
    assert "ArchSamplerHook" not in str(exported.custom_hooks)

    # the supernet on that arch, recalibrated as the export did, equals the exported detector
    set_arch(model, arch)
    recalibrate_bn(model, scoring.calibration_batches(cfg, 4), forward=scoring.calibration_forward)
    fixed = config.build_model(exported, report["weights"], "cpu")
    assert is_fixed(fixed)
    x = torch.randn(2, 3, 128, 128)
    model.eval(), fixed.eval()
    with torch.no_grad():
        for a, b in zip(model.extract_feat(x), fixed.extract_feat(x)):
            assert torch.equal(a, b)
    assert report["onnx"].endswith("features.onnx") and report["onnx_max_abs_diff"] < 1e-4
    onnx.checker.check_model(onnx.load(report["onnx"]))
    assert json.loads((tmp_path / "export" / "export.json").read_text())["onnx"] == report["onnx"]

    exported.work_dir = str(tmp_path / "run")
    exported.train_cfg = dict(type="IterBasedTrainLoop", max_iters=2, val_interval=2)
    runner = Runner.from_cfg(exported)
    runner.train()
    assert 0.0 <= runner.test()["coco/bbox_mAP"] <= 1.0


def test_published_neck_archs_export(trained_neck, tmp_path):
    name, cfg, weights = trained_neck
    arch_file = CONFIGS / ("bifpn_d0.arch.json" if name == "bifpn" else "nasfpn_published.arch.json")
    neck = json.loads(arch_file.read_text())
    if name == "joint":  # the published NAS-FPN cells with a sampled backbone
        space = space_of(config.build_model(cfg, weights, "cpu"))
        backbone = {k: v for k, v in sample(space, random.Random(0)) if k.startswith("backbone.")}
        arch_file = tmp_path / "joint.arch.json"
        arch_file.write_text(json.dumps({**backbone, **neck}))
    report = export(cfg, weights, arch_file, tmp_path / "out", calib_images=2, onnx=False)
    assert Config.fromfile(report["config"]).model.neck.arch == neck


def test_backbone_only_costs_are_refused_for_a_neck_search(trained_neck, tmp_path):
    name, cfg, weights = trained_neck
    with pytest.raises(ValueError, match="backbone-only costs cannot constrain the choices outside the backbone"):
        search(cfg, weights, tmp_path, backbone_only=True, **SETTINGS)


@pytest.mark.parametrize("name", sorted(COCO))
def test_coco_neck_configs_build_and_train_an_iteration(name, shapes_root, tmp_path):
    cfg = tiny_config(COCO[name], shapes_root, tmp_path, iters=1)
    cfg.model.data_preprocessor.pop("batch_augments", None)  # 640 px padding: too slow for a CPU test
    cfg.model.backbone.init_cfg = None  # no download: ImageNet weights are the user's to provide
    # FLOPs-binned sampling builds the 7-stack neck's cost table first (~1 min on CPU); the shapes configs test it
    cfg.custom_hooks = [dict(h, sampling="uniform") for h in cfg.custom_hooks]
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert (tmp_path / "supernet.pth").exists()
