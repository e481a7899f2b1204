"""The detection demos: architecture search inside MMDetection on a generated COCO-format data set.

Offline, on CPU, in about five to ten minutes on 2 cores. ``job`` picks what is searched:

* ``detnas`` — the backbone: a DetNAS ShuffleNetV2 supernet (``detnas_shufflenet_demo``, 10 choice blocks);
* ``nasfpn`` — the neck: NAS-FPN merging cells (7 cells, stacked twice) on a fixed narrow ResNet-18;
* ``bifpn`` — the neck: BiFPN inputs, fusion rules and depth on the same backbone;
* ``joint`` — backbone and NAS-FPN neck in one arch.

Each demo writes a COCO-format shapes set (train / val / test splits: images + annotation JSON) that mmdet's
``CocoDataset`` loads, then runs the shared pipeline (:func:`tasknas.plugins.openmmlab.demo.run_pipeline`):
supernet training, search under a whole-detector MACs budget, export, and the found arch next to a random
arch of similar MACs on the test split.
"""
from __future__ import annotations

import time
from pathlib import Path

from ..openmmlab.config import load_config
from ..openmmlab.demo import run_pipeline, say
from .synthetic import write_shapes_coco

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "detection"
JOBS = {  # job -> (config, what its supernet is)
    "detnas": ("retinanet_detnas-demo_fpn_shapes.py", "RetinaNet, detnas_shufflenet_demo backbone"),
    "nasfpn": ("retinanet_r18-tiny_nasfpn-search_shapes.py", "RetinaNet, fixed ResNet-18/16, NAS-FPN neck space"),
    "bifpn": ("retinanet_r18-tiny_bifpn-search_shapes.py", "RetinaNet, fixed ResNet-18/16, BiFPN neck space"),
    "joint": ("retinanet_detnas-demo_nasfpn-search_shapes.py", "RetinaNet, DetNAS backbone + NAS-FPN neck space"),
}
CONFIG = CONFIGS / JOBS["detnas"][0]
IMAGE_SIZE = 128


def demo_config(data_root: Path, work_dir: Path, iterations: int, seed: int = 0, job: str = "detnas"):
    cfg = load_config(CONFIGS / JOBS[job][0])
    cfg.randomness = dict(seed=seed)
    for split in ("train", "val", "test"):
        loader = cfg[f"{split}_dataloader"]
        loader.dataset.data_root = str(data_root)
        loader.dataset.ann_file = f"annotations/{split}.json"
        loader.dataset.data_prefix = dict(img=f"{split}/")
    cfg.val_evaluator = dict(cfg.val_evaluator, ann_file=str(data_root / "annotations" / "val.json"))
    cfg.test_evaluator = dict(cfg.val_evaluator, ann_file=str(data_root / "annotations" / "test.json"))
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iterations, val_interval=iterations)
    cfg.param_scheduler = [
        dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=min(50, iterations)),
        dict(type="CosineAnnealingLR", T_max=iterations, eta_min=1e-4, by_epoch=False, begin=0, end=iterations)]
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=iterations)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=max(1, iterations // 10))
    cfg.work_dir = str(work_dir)
    return cfg


def run(out: Path, iterations: int = 1000, population: int = 10, generations: int = 5, seed: int = 0,
        images: tuple[int, int, int] = (400, 150, 150), job: str = "detnas") -> dict:
    if job not in JOBS:
        raise ValueError(f"demo job {job!r} is not one of {sorted(JOBS)}")
    start = time.monotonic()
    data = out / "data"
    write_shapes_coco(data, {"train": images[0], "val": images[1], "test": images[2]}, IMAGE_SIZE, seed=seed)
    say(f"wrote a COCO-format shapes set to {data}: {images[0]} train / {images[1]} val / {images[2]} test "
        f"images, {IMAGE_SIZE}x{IMAGE_SIZE}")
    cfg = demo_config(data, out / "supernet", iterations, seed, job)
    summary = run_pipeline(cfg, out, JOBS[job][1], iterations, population, generations, seed, start)
    if job in ("detnas", "joint"):
        say("(backbone letters per block: 3/5/7 = shufflenet k3/k5/k7, x = xception)")
    if job in ("nasfpn", "joint"):
        say("(NAS-FPN cells: cN=op(input1,input2)>output level; gp = global-pool attention)")
    say("(mAP = COCO bbox mAP@[.5:.95])")
    say(f"done in {summary['seconds']:.0f} s; results table and Pareto plot in {out / 'search'}")
    return summary
