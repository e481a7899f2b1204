"""The detection demos: architecture search inside MMDetection on a generated COCO-format data set.

Offline, on CPU, in about five to ten minutes on 2 cores. ``job`` picks what is searched:

* ``detnas`` — the backbone: a DetNAS ShuffleNetV2 supernet (``detnas_shufflenet_demo``, 10 choice blocks);
* ``nasfpn`` — the neck: NAS-FPN merging cells (7 cells, stacked twice) on a fixed narrow ResNet-18;
* ``bifpn`` — the neck: BiFPN inputs, fusion rules and depth on the same backbone;
* ``joint`` — backbone and NAS-FPN neck in one arch.

Each demo

1. writes a COCO-format shapes set (train / val / test splits: images + annotation JSON) that mmdet's
   ``CocoDataset`` loads;
2. trains the RetinaNet supernet with the stock Runner and SPOS path sampling (``tasknas train``'s code path);
3. searches it (``tasknas search``): every candidate is recalibrated on training images and scored by the
   config's CocoMetric on the val split, under a whole-detector MACs budget;
4. exports the best subnet (``tasknas export``: weights, config, ONNX);
5. reports the found arch next to a random arch of similar MACs, both scored on the test split.
"""
from __future__ import annotations

import contextlib
import copy
import io
import random
import time
from pathlib import Path

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ...core import EvolutionConfig, ProgressBar, sample_like, space_of
from ...core.spaces.shufflenet import arch_letters
from .bifpn import describe_bifpn
from .evaluation import DetectionScorer, build_detector, calibration_batches, detector_cost_table, load_config
from .export import export
from .nasfpn import describe_nasfpn
from .search import Limits, search
from .synthetic import write_shapes_coco
from .training import train

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "detection"
JOBS = {  # job -> (config, what its supernet is)
    "detnas": ("retinanet_detnas-demo_fpn_shapes.py", "RetinaNet, detnas_shufflenet_demo backbone"),
    "nasfpn": ("retinanet_r18-tiny_nasfpn-search_shapes.py", "RetinaNet, fixed ResNet-18/16, NAS-FPN neck space"),
    "bifpn": ("retinanet_r18-tiny_bifpn-search_shapes.py", "RetinaNet, fixed ResNet-18/16, BiFPN neck space"),
    "joint": ("retinanet_detnas-demo_nasfpn-search_shapes.py", "RetinaNet, DetNAS backbone + NAS-FPN neck space"),
}
CONFIG = CONFIGS / JOBS["detnas"][0]
IMAGE_SIZE = 128


def describe(arch) -> str:
    """A short text for an arch of any demo space."""
    chosen = dict(arch)
    parts = []
    backbone = tuple(sorted((k, v) for k, v in chosen.items() if not k.startswith("neck.")))
    if backbone:
        parts.append(arch_letters(backbone))
    if "neck.outputs" in chosen:
        parts.append(describe_nasfpn(chosen))
    elif "neck.depth" in chosen:
        parts.append(describe_bifpn(chosen))
    return " | ".join(parts)


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


def quiet_training(cfg):
    """The demo's training run: mmengine logs warnings only (no environment/config dump), a progress bar
    instead of log lines, and no validation pass (the search evaluates)."""
    out = copy.deepcopy(cfg)
    out.log_level = "WARNING"
    out.val_cfg = out.val_dataloader = out.val_evaluator = None
    out.train_cfg = dict(out.train_cfg, val_interval=out.train_cfg["max_iters"] + 1)
    out.custom_hooks = list(out.custom_hooks) + [dict(type="TrainProgressHook")]
    return out


@HOOKS.register_module()
class TrainProgressHook(Hook):
    """A progress bar with the smoothed loss, for runs whose log level hides mmengine's iteration lines."""

    priority = "LOWEST"

    def before_train(self, runner) -> None:
        self.bar = ProgressBar(runner.max_iters, "train supernet")
        self.loss = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = float(outputs["loss"].detach()) if outputs and "loss" in outputs else float("nan")
        self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
        self.bar.update(runner.iter + 1, f"loss {self.loss:.3f}")


def run(out: Path, iterations: int = 1000, population: int = 10, generations: int = 5, seed: int = 0,
        images: tuple[int, int, int] = (400, 150, 150), job: str = "detnas") -> dict:
    if job not in JOBS:
        raise ValueError(f"demo job {job!r} is not one of {sorted(JOBS)}")
    start = time.monotonic()
    say = lambda msg: print(f"[demo] {msg}", flush=True)  # noqa: E731
    data = out / "data"
    write_shapes_coco(data, {"train": images[0], "val": images[1], "test": images[2]}, IMAGE_SIZE, seed=seed)
    say(f"wrote a COCO-format shapes set to {data}: {images[0]} train / {images[1]} val / {images[2]} test "
        f"images, {IMAGE_SIZE}x{IMAGE_SIZE}")
    cfg = demo_config(data, out / "supernet", iterations, seed, job)
    space_size = space_of(build_detector(cfg, device="cpu")).size()
    say(f"training the supernet ({JOBS[job][1]}: {space_size:.3g} archs) for {iterations} iterations with the "
        "stock mmengine Runner ...")
    with contextlib.redirect_stdout(io.StringIO()):  # what pycocotools prints when the Runner loads the data
        train(quiet_training(cfg), out / "supernet")
    weights = out / "supernet" / "supernet.pth"

    model = build_detector(cfg, weights)
    table = detector_cost_table(model, (IMAGE_SIZE, IMAGE_SIZE))
    lo, hi = table.range("macs")
    budget = (lo + 0.6 * (hi - lo)) / 1e9
    say(f"searching: {population} x {generations} candidates, whole-detector budget {budget:.3f} GMACs "
        f"(the space spans {lo / 1e9:.3f}-{hi / 1e9:.3f})")
    result = search(cfg, weights, out / "search", limits=Limits(macs_max=budget), calib_images=32,
                    evolution=EvolutionConfig(population=population, topk=max(2, population // 5),
                                              mutations=population * 2 // 5, crossovers=population * 2 // 5,
                                              generations=generations, seed=seed, strategy="evolution"))
    report = export(cfg, weights, out / "search" / "best.arch.json", out / "export", calib_images=32)
    say(f"exported the best subnet to {out / 'export'}: subnet.pth, {Path(report['config']).name}, "
        f"{Path(report['onnx']).name} (onnxruntime max rel. diff {report['onnx_max_abs_diff']:.1e})")

    best = result.best
    rng = random.Random(seed + 1)
    rand = sample_like(space_of(model), table.macs, best, rng)
    scorer = DetectionScorer(cfg, model, calibration_batches(cfg, 32, seed=seed), split="test")
    summary = {"best": best, "best_val_map": result.best_score, "best_test_map": scorer(best)["score"],
               "best_gmacs": table.macs(best) / 1e9, "candidates": len(result.records)}
    say(f"found arch  {table.macs(best) / 1e9:.3f} GMACs  val mAP {result.best_score:.3f}  "
        f"test mAP {summary['best_test_map']:.3f}  {describe(best)}")
    if rand is not None:
        summary["random_test_map"] = scorer(rand)["score"]
        say(f"random arch {table.macs(rand) / 1e9:.3f} GMACs                 test mAP "
            f"{summary['random_test_map']:.3f}  {describe(rand)}")
    if job in ("detnas", "joint"):
        say("(backbone letters per block: 3/5/7 = shufflenet k3/k5/k7, x = xception)")
    if job in ("nasfpn", "joint"):
        say("(NAS-FPN cells: cN=op(input1,input2)>output level; gp = global-pool attention)")
    say("(mAP = COCO bbox mAP@[.5:.95])")
    summary["seconds"] = time.monotonic() - start
    say(f"done in {summary['seconds']:.0f} s; results table and Pareto plot in {out / 'search'}")
    return summary
