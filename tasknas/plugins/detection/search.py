"""``tasknas search CONFIG --checkpoint SUPERNET.pth --work-dir DIR``: DetNAS evolutionary backbone search.

Each candidate: constraints checked from the cost table (whole-detector or backbone-only MACs/params at
the config's input size) → activate → recalibrate BN on N training images → the config's own evaluator
on the evaluation split → bbox mAP. The core :func:`~tasknas.core.evolve` drives it; its state is on disk
after every candidate and ``--resume`` continues it. DIR ends with ``results.csv`` / ``results.json``
(arch, GMACs, params, mAP of every candidate), ``pareto.png`` (MACs vs mAP, the chosen arch marked),
``best.arch.json``, ``cost_table.json`` and the search state. Under torchrun the candidates are sharded
across ranks (the same result as one process); rank 0 writes the files.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from mmengine.config import Config

from ...core import EvolutionConfig, ProgressBar, SearchResult, evolve, save_arch, space_of
from ...core.state import atomic_write, atomic_write_text
from .evaluation import (
    DetectionScorer,
    build_detector,
    calibration_batches,
    detector_cost_table,
    input_size_of,
    load_config,
)
from .training import init_distributed_from_env


@dataclass(frozen=True)
class Limits:
    """Constraint ranges; MACs in G (multiply-adds), params in M, latency in ms. None = unbounded."""

    macs_min: float | None = None
    macs_max: float | None = None
    params_min: float | None = None
    params_max: float | None = None
    latency_max: float | None = None  # ms at batch 1, measured on the search device


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def search(config: str | os.PathLike | Config, checkpoint: str | os.PathLike, work_dir: str | os.PathLike, *,
           resume: bool = False, options: dict | None = None, limits: Limits = Limits(),
           backbone_only: bool = False, input_size: tuple[int, int] | None = None, calib_images: int = 64,
           split: str = "val", evolution: EvolutionConfig | None = None, progress: bool = True) -> SearchResult:
    """Run the search with ``evolution`` (default: ``EvolutionConfig.preset('detnas')``: 50 / top 10 / 20 mutations /
    20 crossovers / 10 random, 20 generations); its seed also draws the calibration images."""
    evolution = EvolutionConfig.preset("detnas") if evolution is None else evolution
    seed = evolution.seed
    init_distributed_from_env()
    work = Path(work_dir)
    cfg = load_config(config, options)
    model = build_detector(cfg, checkpoint)
    space = space_of(model)
    if not space:
        raise ValueError(f"config {str(config)!r} builds a detector without Choice modules: nothing to search")
    size = tuple(input_size) if input_size else input_size_of(cfg)
    table = detector_cost_table(model, size, backbone_only, latency=limits.latency_max is not None)
    constraints = []
    if limits.macs_min is not None or limits.macs_max is not None:
        constraints.append(table.constraint("macs", *(None if v is None else v * 1e9
                                                      for v in (limits.macs_min, limits.macs_max))))
    if limits.params_min is not None or limits.params_max is not None:
        constraints.append(table.constraint("params", *(None if v is None else v * 1e6
                                                        for v in (limits.params_min, limits.params_max))))
    if limits.latency_max is not None:
        constraints.append(table.constraint("latency", hi=limits.latency_max / 1e3))
    for c in constraints:
        c.check_feasible()  # before the (slow) data loading
    work.mkdir(parents=True, exist_ok=True)
    scorer = DetectionScorer(cfg, model, calibration_batches(cfg, calib_images, seed=seed), split,
                             work_dir=work)
    if _rank() == 0:
        table.save(work / "cost_table.json")
    total = evolution.budget or evolution.population * evolution.generations
    bar = ProgressBar(total, "search") if progress and _rank() == 0 else None

    def report(event: dict) -> None:
        if bar is not None:
            bar.update(event["scored"], f"gen {event['generation'] + 1}/{event['generations']} cand "
                                        f"{event['done']}/{event['candidates']} best mAP {event['best_score']:.4f}")

    result = evolve(space, scorer, evolution, constraints=constraints, cost=table.macs,
                    state_path=work / "search_state.json", resume=resume, progress=report)
    if _rank() == 0:
        write_results(work, result, table, {"config": str(config), "checkpoint": str(checkpoint),
                                            "input_size": list(size), "backbone_only": backbone_only,
                                            "constraints": [str(c) for c in constraints], "split": split,
                                            "calib_images": calib_images})
    return result


def write_results(work: Path, result: SearchResult, table, settings: dict) -> None:
    """results.csv/.json, best.arch.json and pareto.png in ``work`` (each written atomically)."""
    pareto = {r.index for r in result.pareto}
    rows = [{"index": r.index, "generation": r.generation, "mAP": round(r.score, 4),
             "gmacs": round(table.macs(r.arch) / 1e9, 4), "mparams": round(table.params(r.arch) / 1e6, 4),
             "pareto": r.index in pareto, "arch": json.dumps(r.arch.as_dict(), separators=(",", ":"))}
            for r in result.records]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(work / "results.csv", text.getvalue())
    atomic_write_text(work / "results.json", json.dumps(
        {"settings": settings, "best": result.best.as_dict(), "best_mAP": result.best_score,
         "best_index": result.topk[0].index, "topk": [r.index for r in result.topk],
         "pareto": sorted(pareto), "records": [dict(row, arch=r.arch.as_dict(), metrics=r.info)
                                               for row, r in zip(rows, result.records)]}, indent=1) + "\n")
    save_arch(work / "best.arch.json", result.best)
    plot_pareto(work / "pareto.png", result, table, "backbone" if settings.get("backbone_only") else "whole detector")


def plot_pareto(path: Path, result: SearchResult, table, what: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.scatter([table.macs(r.arch) / 1e9 for r in result.records], [r.score for r in result.records], s=10,
               c="0.65", label="candidates")
    front = result.pareto
    ax.plot([table.macs(r.arch) / 1e9 for r in front], [r.score for r in front], "-o", ms=4, c="tab:blue",
            label="Pareto front")
    ax.scatter([table.macs(result.best) / 1e9], [result.best_score], marker="*", s=180, c="tab:red", zorder=5,
               label=f"chosen (mAP {result.best_score:.3f})")
    ax.set_xlabel(f"GMACs ({what})")
    ax.set_ylabel("bbox mAP")
    ax.set_title(f"{len(result.records)} candidates, {result.generations} generations")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
