"""``tasknas search CONFIG --checkpoint SUPERNET.pth --work-dir DIR``: architecture search on a trained supernet.

Each candidate: constraints checked from the cost table (whole-model or backbone-only MACs/params at the
config's input size) → activate → recalibrate BN on N training images → the config's own evaluator (the
task's search variant of it) on the evaluation split → the task's metric (bbox mAP, mIoU). The core
:func:`~tasknas.core.evolve` drives it; its state is on disk after every candidate and ``--resume``
continues it. DIR ends with ``results.csv`` / ``results.json`` (arch, GMACs, params, score of every
candidate; under ``settings`` everything that decides a score: seed, calibration images, split, input size,
constraints, the evolution), ``search_config.py`` (the config as the search used it, ``Config.dump``),
``pareto.png`` (MACs vs score, the chosen arch marked), ``best.arch.json``, ``cost_table.json`` and the search
state. ``tasknas export`` reads the settings back. Under torchrun the candidates are sharded across ranks (the
same result as one process); rank 0 writes the files.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from mmengine.config import Config

from ...core import EvolutionConfig, ProgressBar, SearchResult, evolve, save_arch, space_of
from ...core.state import atomic_write, atomic_write_text
from .config import build_model, init_distributed_from_env, load_config, rank
from .scoring import Scorer, calibration_batches, model_cost_table
from .task import Task, task_of


@dataclass(frozen=True)
class Limits:
    """Constraint ranges; MACs in G (multiply-adds), params in M, latency in ms. None = unbounded."""

    macs_min: float | None = None
    macs_max: float | None = None
    params_min: float | None = None
    params_max: float | None = None
    latency_max: float | None = None  # ms at batch 1, measured on the search device


def constraints_of(table, limits: Limits) -> list:
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
    return constraints


def search(config: str | os.PathLike | Config, checkpoint: str | os.PathLike, work_dir: str | os.PathLike, *,
           resume: bool = False, options: dict | None = None, limits: Limits = Limits(),
           backbone_only: bool = False, input_size: tuple[int, int] | None = None, calib_images: int = 64,
           split: str = "val", evolution: EvolutionConfig | None = None, progress: bool = True) -> SearchResult:
    """Run the search with ``evolution`` (default: ``EvolutionConfig.preset('detnas')``: 50 / top 10 / 20
    mutations / 20 crossovers / 10 random, 20 generations); its seed also draws the calibration images."""
    evolution = EvolutionConfig.preset("detnas") if evolution is None else evolution
    init_distributed_from_env()
    work = Path(work_dir)
    cfg = load_config(config, options)
    task = task_of(cfg)
    model = build_model(cfg, checkpoint)
    space = space_of(model)
    if not space:
        raise ValueError(f"config {cfg.filename or config!s} builds a {task.name} model without Choice modules: "
                         "nothing to search")
    size = tuple(input_size) if input_size else task.input_size(cfg)
    table = model_cost_table(model, size, backbone_only, latency=limits.latency_max is not None, task=task)
    constraints = constraints_of(table, limits)
    work.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(cfg, model, calibration_batches(cfg, calib_images, seed=evolution.seed), split, work_dir=work,
                    task=task)
    if rank() == 0:
        table.save(work / "cost_table.json")
    total = evolution.max_scored
    bar = ProgressBar(total, "search") if progress and rank() == 0 else None

    def report(event: dict) -> None:
        if bar is not None:
            bar.update(event["scored"], f"gen {event['generation'] + 1}/{event['generations']} cand "
                                        f"{event['done']}/{event['candidates']} best {task.metric_label} "
                                        f"{event['best_score']:.4f}")

    state = work / "search_state.json"
    if resume and not state.is_file():
        if rank() == 0:
            print(f"[search] nothing to resume in {work} (no search state saved yet): searching from the start",
                  flush=True)
        resume = False
    result = evolve(space, scorer, evolution, constraints=constraints, cost=table.macs, state_path=state,
                    resume=resume, progress=report)
    if rank() == 0:
        atomic_write_text(work / "search_config.py", cfg.dump())
        settings = {"config": str(cfg.filename) if cfg.filename else None, "config_dump": "search_config.py",
                    "checkpoint": str(checkpoint), "task": task.name, "metric": task.metric_key,
                    "input_size": list(size), "backbone_only": backbone_only,
                    "constraints": [str(c) for c in constraints], "split": split, "calib_images": calib_images,
                    "seed": evolution.seed, "evolution": asdict(evolution)}
        write_results(work, result, table, settings, task)
    return result


def write_results(work: Path, result: SearchResult, table, settings: dict, task: Task) -> None:
    """results.csv/.json, best.arch.json and pareto.png in ``work`` (each written atomically)."""
    pareto = {r.index for r in result.pareto}
    label = task.metric_label
    rows = [{"index": r.index, "generation": r.generation, label: round(r.score, 4),
             "gmacs": round(table.macs(r.arch) / 1e9, 4), "mparams": round(table.params(r.arch) / 1e6, 4),
             "pareto": r.index in pareto, "arch": json.dumps(r.arch.as_dict(), separators=(",", ":"))}
            for r in result.records]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(work / "results.csv", text.getvalue())
    atomic_write_text(work / "results.json", json.dumps(
        {"settings": settings, "best": result.best.as_dict(), "best_score": result.best_score,
         "best_index": result.topk[0].index, "topk": [r.index for r in result.topk],
         "pareto": sorted(pareto), "records": [dict(row, arch=r.arch.as_dict(), metrics=r.info)
                                               for row, r in zip(rows, result.records)]}, indent=1) + "\n")
    save_arch(work / "best.arch.json", result.best)
    plot_pareto(work / "pareto.png", result, table, "backbone" if settings.get("backbone_only") else "whole model",
                label)


def plot_pareto(path: Path, result: SearchResult, table, what: str, label: str) -> None:
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
               label=f"chosen ({label} {result.best_score:.3f})")
    ax.set_xlabel(f"GMACs ({what})")
    ax.set_ylabel(label)
    ax.set_title(f"{len(result.records)} candidates, {result.generations} generations")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
