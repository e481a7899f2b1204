"""The segmentation demos: architecture search inside MMSegmentation on a generated mask set.

Offline, on CPU, in under ten minutes on 2 cores. ``job`` picks what is searched:

* ``aspp`` (default) — the searchable ASPP / DeepLabV3+ head (branch dilations, kinds and widths, image pool,
  low-level decoder; keys ``head.*``) on a fixed narrow dilated ResNet-18 (output stride 8);
* ``cells`` — the decoder-cell head (Nekrasov et al.) on a fixed narrow ResNet-18 (strides 4-32);
* ``joint`` — backbone and decode head in one arch: the DetNAS demo ShuffleNetV2 space
  (``detnas_shufflenet_demo``, 10 choice blocks, keys ``backbone.*``) under the ASPP head space;
* ``backbone`` — the DetNAS demo space under mmseg's stock DeepLabV3+ head (``DepthwiseSeparableASPPHead``).

At the demo's budget only ``aspp`` separates the shape classes; the others learn background vs. shape
(docs/segmentation.md, "Demo and what it measured").

Each demo writes the shapes set (train / val / test splits of PNG images and masks) that
:class:`~.data.SegShapesDataset` reads, then runs the shared pipeline
(:func:`tasknas.plugins.openmmlab.demo.run_pipeline`): supernet training with the stock Runner, search under a
whole-segmentor MACs budget (candidates scored by unrounded mIoU on the val split), export (weights, stock
config, ONNX of the segmentor), and the found arch next to a random arch of similar MACs on the test split.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

from ..openmmlab.config import load_config
from ..openmmlab.demo import run_pipeline, say
from .synthetic import write_shapes_seg

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "segmentation"
JOBS = {  # job -> (config, what its supernet is)
    "joint": ("detnas-demo_aspp-search_segshapes-128x128.py", "DeepLabV3+, DetNAS demo backbone + ASPP head space"),
    "backbone": ("detnas-demo_deeplabv3plus_segshapes-128x128.py",
                 "DeepLabV3+, DetNAS demo backbone space, stock head"),
    "aspp": ("r18-tiny-d8_aspp-search_segshapes-128x128.py", "fixed ResNet-18/16 (d8), ASPP head space"),
    "cells": ("r18-tiny_cells-search_segshapes-128x128.py", "fixed ResNet-18/16, decoder-cell head space"),
}
IMAGE_SIZE = 128


def demo_config(data_root: Path, work_dir: Path, iterations: int, seed: int = 0, job: str = "aspp"):
    """The job's shapes config reading ``data_root``, trained ``iterations`` iterations into ``work_dir``."""
    if job not in JOBS:
        raise ValueError(f"segmentation demo job {job!r} is not one of {sorted(JOBS)}")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
    cfg = load_config(CONFIGS / JOBS[job][0])
    cfg.randomness = dict(seed=seed)
    for split in ("train", "val", "test"):
        cfg[f"{split}_dataloader"].dataset.data_root = str(data_root)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iterations, val_interval=iterations)
    cfg.param_scheduler = [dict(type="PolyLR", eta_min=1e-5, power=0.9, begin=0, end=iterations, by_epoch=False)]
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=iterations)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=max(1, iterations // 10), log_metric_by_epoch=False)
    for hook in cfg.custom_hooks:
        if hook.get("type") == "ArchSamplerHook":
            hook["seed"] = seed
    cfg.work_dir = str(work_dir)
    return cfg


def run(out: Path, iterations: int = 1500, population: int = 10, generations: int = 5, seed: int = 0,
        images: tuple[int, int, int] = (400, 100, 100), job: str = "aspp") -> dict:
    """Write the data, then train → search → export → compare; returns the pipeline's summary."""
    if job not in JOBS:
        raise ValueError(f"segmentation demo job {job!r} is not one of {sorted(JOBS)}")
    start = time.monotonic()
    out = Path(out)
    data = out / "data"
    write_shapes_seg(data, {"train": images[0], "val": images[1], "test": images[2]}, IMAGE_SIZE, seed=seed)
    say(f"wrote a shapes segmentation set to {data}: {images[0]} train / {images[1]} val / {images[2]} test "
        f"images with PNG masks, {IMAGE_SIZE}x{IMAGE_SIZE}, 5 classes")
    cfg = demo_config(data, out / "supernet", iterations, seed, job)
    with warnings.catch_warnings():  # mmseg's advice for the loss of its base configs, at every model build
        warnings.filterwarnings("ignore", message=r"Default ``avg_non_ignore`` is False", category=UserWarning)
        summary = run_pipeline(cfg, out, JOBS[job][1], iterations, population, generations, seed, start)
    if job in ("joint", "backbone"):
        say("(backbone letters per block: 3/5/7 = shufflenet k3/k5/k7, x = xception)")
    if job in ("joint", "aspp"):
        say("(ASPP branches: d<rate>:<width>, sep_ = depthwise-separable; pool = image-pool branch; decoder "
            "in<k>:<w> = DeepLabV3+ decoder on backbone output k reduced to w channels)")
    if job == "cells":
        say("(cells: cN = op1(input1) + op2(input2); inK = reduced backbone output K, cK = an earlier cell)")
    say("(mIoU = mean IoU over the 5 classes in %, mmseg's IoUMetric on the test split)")
    say(f"done in {summary['seconds']:.0f} s; results table and Pareto plot in {out / 'search'}")
    return summary
