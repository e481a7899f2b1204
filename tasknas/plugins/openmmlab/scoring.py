"""Scoring candidates with the config's own evaluator: calibration images, the scorer, whole-model costs.

Everything is built from a config without a Runner (no logger, no work_dir side effects):

* :func:`calibration_batches` — N training images through the *test* pipeline (a seeded choice: the same
  images in the same order for every candidate, after a resume and in ``tasknas export``), never the
  evaluation split;
* :class:`Scorer` — activate → recalibrate BN → run the evaluation split → the config's evaluator (or the
  task's exact search variant of it) → the task's metric key. Each rank evaluates on its own (a sharded
  search gives every rank different candidates), so the loaders are plain sequential ones and metrics are
  computed per process;
* :func:`model_cost_table` — FLOPs/params of the whole model (or of the backbone alone) at an input size:
  the searchable parts from the core's lookup table, the arch-independent rest counted once.
"""
from __future__ import annotations

import copy
import numbers
import os
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, METRICS
from torch.utils.data import DataLoader, Subset

from ...core import Arch, CostTable, build_cost_table, choices_of, count_flops, score_candidate, set_arch, space_of
from ...core.cost import ForwardModule, median_seconds
from .config import quiet
from .task import Task, task_of

SPLITS = ("val", "test", "heldout")


def _dataset(cfg_dataset: dict, pipeline: list | None = None):
    cfg_dataset = copy.deepcopy(dict(cfg_dataset))
    inner = cfg_dataset["dataset"] if cfg_dataset.get("type") == "HeldOutSplit" else cfg_dataset
    if pipeline is not None:
        inner["pipeline"] = pipeline
    where = f"dataset {inner.get('ann_file') or inner.get('data_prefix')!r} under {inner.get('data_root')!r}"
    try:
        with quiet():
            dataset = DATASETS.build(cfg_dataset)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{where}: {exc}") from None
    except ValueError as exc:
        if "need at least one array" in str(exc):  # mmengine's error for an empty annotation file
            raise ValueError(f"{where} holds no images") from None
        raise
    if len(dataset) == 0:
        raise ValueError(f"{where} holds no images")
    return dataset


def _test_pipeline(cfg: Config) -> list:
    return cfg.test_dataloader.dataset.get("pipeline", cfg.val_dataloader.dataset.get("pipeline"))


def calibration_forward(model: torch.nn.Module, batch) -> None:
    """One calibration batch through the model (data preprocessor, then the network in tensor mode)."""
    model(**model.data_preprocessor(batch, False), mode="tensor")


def calibration_batches(cfg: Config, num_images: int, batch_size: int = 8, seed: int = 0) -> list:
    """``num_images`` training images (a seeded choice) through the test pipeline, as collated batches.

    With a ``HeldOutSplit`` train dataset they come from its training part, never from the held-out one.
    """
    if not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"calibration needs at least 1 image, got {num_images!r}")
    dataset = _dataset(cfg.train_dataloader.dataset, _test_pipeline(cfg))
    picks = sorted(random.Random(seed).sample(range(len(dataset)), min(num_images, len(dataset))))
    loader = DataLoader(Subset(dataset, picks), batch_size=batch_size, shuffle=False, collate_fn=pseudo_collate)
    return list(loader)


def _as_list(evaluators) -> list:
    return list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]


class Scorer:
    """``scorer(arch)`` → ``{"score": the task's metric, other metrics...}`` for the supernet ``model``.

    ``search_metric=True`` (the default) scores with the task's search variant of the config's evaluator (exact,
    faster or unrounded); ``False`` with the config's evaluator as it is. An evaluation split of at most
    ``cache_images`` images is loaded once and kept in memory (decoded, resized); a larger one is streamed from
    disk for every candidate.
    """

    def __init__(self, cfg: Config, model: torch.nn.Module, calibration: Sequence, split: str = "val",
                 work_dir: str | os.PathLike | None = None, cache_images: int = 1000, search_metric: bool = True,
                 task: Task | None = None):
        if split not in SPLITS:
            raise ValueError(f"evaluation split must be one of {list(SPLITS)}, got {split!r}")
        self.task = task or task_of(cfg)
        if split == "heldout":
            train = cfg.train_dataloader.dataset
            if train.get("type") != "HeldOutSplit":
                raise ValueError("--split heldout needs the config's train dataset wrapped in "
                                 "dict(type='HeldOutSplit', dataset=..., part='train', held_out=N), so the "
                                 f"supernet never trains on the held-out images; it is {train.get('type')!r}")
            if work_dir is None:
                raise ValueError("the held-out split needs a work_dir for its annotation file")
            self.dataset = _dataset(dict(train, part="heldout"), _test_pipeline(cfg))
            evaluators = self.task.heldout_evaluators(self.dataset, _as_list(cfg.val_evaluator), Path(work_dir))
            batch_size = cfg.val_dataloader.get("batch_size", 1)
        else:
            loader_cfg = cfg[f"{split}_dataloader"]
            self.dataset = _dataset(loader_cfg.dataset)
            evaluators = _as_list(cfg[f"{split}_evaluator"])
            batch_size = loader_cfg.get("batch_size", 1)
        if search_metric:
            evaluators = self.task.search_evaluators([copy.deepcopy(dict(e)) for e in evaluators])
        self.loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=False, collate_fn=pseudo_collate)
        if len(self.dataset) <= cache_images:  # small splits: decode and transform once, not per candidate
            self.loader = list(self.loader)
        with quiet():  # CocoMetric loads its annotation file with pycocotools, which prints
            self.metrics = [METRICS.build(c) for c in evaluators]
        for metric in self.metrics:
            metric.dataset_meta = self.dataset.metainfo
        self.model = model
        self.calibration = calibration
        self.metric_key = self.task.metric_key

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return self.metric_values((batch, model.test_step(batch)) for batch in self.loader)

    def metric_values(self, batches_and_outputs) -> dict[str, float]:
        """The evaluators' numbers for ``(batch, test_step outputs)`` pairs of the evaluation split."""
        for batch, outputs in batches_and_outputs:
            for metric in self.metrics:
                if hasattr(metric, "process_samples"):  # a search metric that reads the data samples as they are
                    metric.process_samples(batch, outputs)
                elif getattr(metric, "accepts_data_samples", False):  # ... or whose process() takes them too
                    metric.process(batch, outputs)
                else:
                    metric.process(batch, [o.to_dict() for o in outputs])  # what mmengine's Evaluator hands metrics
        values: dict[str, float] = {}
        for metric in self.metrics:
            with quiet():  # COCOeval prints its summary table
                computed = metric.compute_metrics(metric.results)
            metric.results.clear()
            # numbers.Real: Python and numpy numbers alike (IoUMetric reports numpy float32 values)
            values.update({k: float(v) for k, v in computed.items()
                           if isinstance(v, numbers.Real) and not isinstance(v, bool)})
        return values

    def __call__(self, arch: Arch) -> dict[str, float]:
        # Local BN statistics: in a sharded search every rank scores its own candidate on all calibration images.
        values = score_candidate(self.model, arch, self.calibration, self.evaluate, forward=calibration_forward,
                                 sync_bn=False)
        if self.metric_key not in values:
            raise ValueError(f"the evaluator gave no {self.metric_key!r}; it gave {sorted(values)}")
        return {"score": values[self.metric_key], **values}


def model_cost_table(model: torch.nn.Module, input_size: tuple[int, int], backbone_only: bool = False,
                     latency: bool = False, task: Task | None = None) -> CostTable:
    """Per-option FLOPs/params (and, with ``latency``, measured seconds at batch 1 on the model's device) at
    ``input_size`` (H, W): of the backbone alone, or of the whole model (the searchable parts from the lookup
    table over ``task.features``; the rest, which does not depend on the arch, measured once and added to the
    base)."""
    if task is None:
        raise ValueError("model_cost_table needs the task (task_of(cfg))")
    if len(input_size) != 2 or any(not isinstance(s, int) or s < 1 for s in input_size):
        raise ValueError(f"input size must be two positive ints (H, W), got {tuple(input_size)!r}")
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, *input_size, device=device)
    if backbone_only:
        outside = sorted(set(space_of(model)) - set(space_of(model.backbone)))
        if outside:
            raise ValueError(f"backbone-only costs cannot constrain the choices outside the backbone (e.g. "
                             f"{outside[0]!r}); drop --backbone-only to constrain the whole model")
        return build_cost_table(model.backbone, x, forward=lambda m, inp: m(inp), latency=latency)
    table = build_cost_table(model, x, forward=task.features, latency=latency)
    space = space_of(model)
    probe = Arch((key, options[0]) for key, options in space.items())
    previous = [(c, c.active) for c in choices_of(model)]
    set_arch(model, probe)
    training = model.training
    model.eval()
    samples = [task.dummy_sample(*input_size)]
    whole = ForwardModule(model, lambda m, inp: m(inp, samples, mode="tensor"))
    try:
        table.base["flops"] += count_flops(whole, x) - table.flops(probe)
        if latency:
            with torch.no_grad():
                seconds = median_seconds(lambda: whole(x), 10, device.type == "cuda")
            table.base["latency"] += max(0.0, seconds - table.cost(probe, "latency"))
    finally:
        model.train(training)
        for choice, active in previous:
            choice.active = active
    return table

