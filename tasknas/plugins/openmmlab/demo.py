"""The demos' pipeline, for any task: train the supernet, search under a MACs budget, export, compare.

A task's demo writes its generated data set and a config that reads it, then calls :func:`run_pipeline`:

1. supernet training with the stock Runner and SPOS path sampling (``tasknas train``'s code path), with a
   progress bar instead of mmengine's log lines;
2. the search (``tasknas search``): every candidate recalibrated on training images and scored by the config's
   evaluator (the task's search metric) on the val split, under a whole-model MACs budget at 60% of the range;
3. the export of the best subnet (``tasknas export``: weights, config, ONNX);
4. the found arch next to a random arch of similar MACs, both scored on the test split.
"""
from __future__ import annotations

import contextlib
import copy
import io
import random
import time
from pathlib import Path

from mmengine.config import Config

from ...core import EvolutionConfig, sample_like, space_of
from .config import build_model
from .export import export
from .scoring import Scorer, calibration_batches, model_cost_table
from .search import Limits, search
from .task import task_of
from .training import train

CALIB_IMAGES = 32


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def quiet_training(cfg: Config) -> Config:
    """The demo's training run: mmengine logs warnings only (no environment/config dump), a progress bar
    instead of log lines, and no validation pass (the search evaluates)."""
    out = copy.deepcopy(cfg)
    out.log_level = "WARNING"
    out.val_cfg = out.val_dataloader = out.val_evaluator = None
    out.train_cfg = dict(out.train_cfg, val_interval=out.train_cfg["max_iters"] + 1)
    out.custom_hooks = list(out.custom_hooks) + [dict(type="TrainProgressHook")]
    return out


def demo_evolution(population: int, generations: int, seed: int) -> EvolutionConfig:
    """The demos' small evolution (SPOS-style: every generation a full population): top 1/5, 2/5 mutations,
    2/5 crossovers, the rest random — ``population x generations`` candidates, as the demos announce."""
    return EvolutionConfig(strategy="evolution", population=population, topk=max(2, population // 5),
                           mutations=population * 2 // 5, crossovers=population * 2 // 5, generations=generations,
                           seed=seed)


def run_pipeline(cfg: Config, out: Path, what: str, iterations: int, population: int, generations: int,
                 seed: int, start: float | None = None) -> dict:
    """Steps 1–4 above for ``cfg`` (whose data the caller wrote); prints as it goes, returns a summary."""
    start = time.monotonic() if start is None else start
    task = task_of(cfg)
    label = task.metric_label
    space_size = space_of(build_model(cfg, device="cpu")).size()
    say(f"training the supernet ({what}: {space_size:.3g} archs) for {iterations} iterations with the stock "
        "mmengine Runner ...")
    with contextlib.redirect_stdout(io.StringIO()):  # what pycocotools prints when the Runner loads the data
        train(quiet_training(cfg), out / "supernet")
    weights = out / "supernet" / "supernet.pth"

    model = build_model(cfg, weights)
    size = task.input_size(cfg)
    table = model_cost_table(model, size, task=task)
    lo, hi = table.range("macs")
    budget = (lo + 0.6 * (hi - lo)) / 1e9
    say(f"searching: {population} x {generations} candidates, whole-model budget {budget:.3f} GMACs "
        f"(the space spans {lo / 1e9:.3f}-{hi / 1e9:.3f})")
    result = search(cfg, weights, out / "search", limits=Limits(macs_max=budget), calib_images=CALIB_IMAGES,
                    evolution=demo_evolution(population, generations, seed))
    report = export(cfg, weights, out / "search" / "best.arch.json", out / "export")
    say(f"exported the best subnet to {out / 'export'}: subnet.pth, {Path(report['config']).name}, "
        f"{Path(report['onnx']).name} (onnxruntime max rel. diff {report['onnx_max_abs_diff']:.1e})")

    best = result.best
    rand = sample_like(space_of(model), table.macs, best, random.Random(seed + 1))
    scorer = Scorer(cfg, model, calibration_batches(cfg, CALIB_IMAGES, seed=seed), split="test",
                    search_metric=False)
    summary = {"best": best, "best_val": result.best_score, "best_test": scorer(best)["score"],
               "best_gmacs": table.macs(best) / 1e9, "candidates": len(result.records)}
    say(f"found arch  {table.macs(best) / 1e9:.3f} GMACs  val {label} {result.best_score:.3f}  "
        f"test {label} {summary['best_test']:.3f}  {task.describe(best)}")
    if rand is not None:
        summary["random_test"] = scorer(rand)["score"]
        pad = " " * (len(f"val {label} {result.best_score:.3f}") + 2)
        say(f"random arch {table.macs(rand) / 1e9:.3f} GMACs  {pad}test {label} {summary['random_test']:.3f}  "
            f"{task.describe(rand)}")
    summary["seconds"] = time.monotonic() - start
    return summary
