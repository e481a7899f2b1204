"""Shared fixtures for the segmentation tests: the generated mask set and tiny CPU configs built from the
project's real config files (their own models; data, sizes and schedules shrunk to a few 64 px images)."""
from pathlib import Path

import pytest
from mmengine.config import Config

from tasknas.plugins.segmentation.synthetic import LAYOUTS, write_shapes_seg

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "segmentation"
JOINT = CONFIGS / "detnas-demo_aspp-search_segshapes-128x128.py"
CELLS = CONFIGS / "r18-tiny_cells-search_segshapes-128x128.py"
SIZE = 64


@pytest.fixture(scope="session")
def seg_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("segshapes")
    write_shapes_seg(root, {"train": 16, "val": 6, "test": 6}, image_size=SIZE, seed=0)
    return root


def shrink_pipeline(pipeline: list, size: int) -> list:
    """``pipeline`` with every resize and crop at ``size`` × ``size`` (mmseg scales are (W, H); crops (H, W))."""
    out = []
    for step in pipeline:
        step = dict(step)
        if step["type"] in ("Resize", "RandomResize") and "scale" in step:
            step["scale"] = (size, size)
        if step["type"] == "RandomCrop":
            step["crop_size"] = (size, size)
        out.append(step)
    return out


def point_at(dataset: dict, data_root: Path, layout: str, split: str, size: int) -> None:
    """Make the (possibly HeldOutSplit-wrapped) dataset config read ``split`` of a generated set in ``layout``."""
    inner = dataset["dataset"] if dataset.get("type") == "HeldOutSplit" else dataset
    inner["data_root"] = str(data_root)
    inner["data_prefix"] = LAYOUTS[layout].prefix(split)
    inner["pipeline"] = shrink_pipeline(inner["pipeline"], size)


def tiny_config(config: Path | Config, data_root: Path, work_dir: Path, iters: int = 2, batch_size: int = 2,
                layout: str = "shapes", splits: tuple[str, str] = ("train", "val"), size: int = SIZE) -> Config:
    """``config``'s own model trained ``iters`` iterations on the generated set at ``size`` px, validated on it."""
    cfg = Config.fromfile(str(config)) if not isinstance(config, Config) else config
    for name, split in (("train_dataloader", splits[0]), ("val_dataloader", splits[1]),
                        ("test_dataloader", splits[1])):
        loader = cfg[name]
        loader.batch_size = batch_size
        loader.num_workers = 0
        loader.persistent_workers = False
        point_at(loader.dataset, data_root, layout, split, size)
    cfg.model.data_preprocessor.size = (size, size)
    cfg.crop_size = (size, size)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=iters)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1, log_metric_by_epoch=False)
    cfg.default_hooks.pop("visualization", None)
    cfg.log_processor = dict(by_epoch=False)
    for hook in cfg.get("custom_hooks", []):
        if hook["type"] == "ArchSamplerHook":
            hook["input_size"] = (size, size)
    cfg.work_dir = str(work_dir)
    cfg.launcher = "none"
    cfg.log_level = "WARNING"
    return cfg


@pytest.fixture(scope="session")
def trained(seg_root, tmp_path_factory) -> tuple[Config, Path]:
    """(tiny joint config, supernet.pth): the DetNAS demo backbone + ASPP head supernet trained 4 iterations
    with `tasknas train`'s code path, on the train images outside a held-out search split of 4."""
    from tasknas.plugins.openmmlab.training import train

    work = tmp_path_factory.mktemp("seg_supernet")
    cfg = tiny_config(JOINT, seg_root, work, iters=4)
    cfg.train_dataloader.dataset = dict(type="HeldOutSplit", dataset=cfg.train_dataloader.dataset, part="train",
                                        held_out=4)
    train(cfg, work)
    return cfg, work / "supernet.pth"
