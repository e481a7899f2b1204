"""Shared fixtures for the detection tests: a generated COCO-format shapes set and tiny CPU configs built
from the project's real config files."""
from pathlib import Path

import pytest
from mmengine.config import Config

from tasknas.plugins.detection.synthetic import write_shapes_coco

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "detection"
SHAPES_CONFIG = CONFIGS / "retinanet_detnas-small_fpn_shapes.py"


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    write_shapes_coco(root, {"train": 24, "val": 8}, image_size=128, seed=0)
    return root


def tiny_config(config: Path, data_root: Path, work_dir: Path, iters: int = 2, batch_size: int = 2) -> Config:
    """``config``'s own model, trained on the shapes set at 128 px for ``iters`` iterations, validated on it."""
    cfg = Config.fromfile(str(config))
    shapes = Config.fromfile(str(SHAPES_CONFIG))
    classes = len(shapes.metainfo["classes"])
    if "roi_head" in cfg.model:
        cfg.model.roi_head.bbox_head.num_classes = classes
    else:
        cfg.model.bbox_head.num_classes = classes
    cfg.model.test_cfg = shapes.model.test_cfg if "roi_head" not in cfg.model else cfg.model.test_cfg
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = shapes[name]
        loader.dataset.data_root = str(data_root)
        loader.batch_size = batch_size
        cfg[name] = loader
    evaluator = dict(shapes.val_evaluator, ann_file=str(data_root / "annotations/val.json"))
    cfg.val_evaluator = cfg.test_evaluator = evaluator
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=iters)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1)
    cfg.log_processor = dict(by_epoch=False)
    for hook in cfg.custom_hooks:
        if hook["type"] == "ArchSamplerHook":
            hook["input_size"] = (128, 128)
    cfg.work_dir = str(work_dir)
    cfg.launcher = "none"
    return cfg


@pytest.fixture(scope="session")
def trained(shapes_root, tmp_path_factory) -> tuple[Config, Path]:
    """(tiny shapes config, supernet.pth) of a supernet trained 4 iterations with `tasknas train`'s code path."""
    from tasknas.plugins.openmmlab.training import train

    work = tmp_path_factory.mktemp("supernet")
    cfg = tiny_config(SHAPES_CONFIG, shapes_root, work, iters=4)
    train(cfg, work)
    return cfg, work / "supernet.pth"
