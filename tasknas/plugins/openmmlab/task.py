"""Task descriptions: what a task (detection, segmentation, ...) tells the shared OpenMMLab layer about itself.

The layer's drivers — ``tasknas train | search | export`` and the demos — are task-neutral: they build the
model from the config, sample paths, recalibrate BN, score candidates with the config's own evaluator,
and export the subnet. Everything they must know about a task is one :class:`Task` value, registered by
the task's plugin package with :func:`register_task` when it is imported. :func:`task_of` picks the task
of a config from its ``default_scope`` (``'mmdet'``, ``'mmseg'``), importing the plugin on first use.

Adding a task (say, pose estimation in MMPose) means writing a plugin package that

1. registers its searchable modules in the host registry (or in mmengine's root registries, which every
   OpenMMLab package's registries inherit from);
2. registers one ``Task`` with: the host scope, the metric key its evaluator reports, a dummy data sample
   for whole-model cost tables, the model parts that may hold choices (and their registered types), how to
   find the config's input size, and — only where the defaults do not fit — the hooks below;
3. adds its scope to ``PLUGINS`` below, so configs of that scope find it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

# config default_scope -> the plugin package that registers the task of that scope
PLUGINS = {"mmdet": "tasknas.plugins.detection", "mmseg": "tasknas.plugins.segmentation"}


def _features(model: torch.nn.Module, x: torch.Tensor):
    return model.extract_feat(x)


def _same_evaluators(dataset, evaluators: list[dict], work_dir: Path) -> list[dict]:
    return evaluators


def _keep_evaluators(evaluators: list[dict]) -> list[dict]:
    return evaluators


@dataclass(frozen=True)
class Task:
    """One task's description. Required fields first; the hooks after them have defaults that fit most tasks.

    * ``name`` / ``scope``: the task's name and the ``default_scope`` of its configs (``'mmdet'``);
    * ``metric_key``: the key of the evaluator's result that is the search score (``'bbox_mAP'``, ``'mIoU'``),
      ``metric_label`` how tables and plots name it (``'mAP'``);
    * ``searchable``: model part -> the registered types of that part that hold choices
      (``{'backbone': ('SearchableShuffleNetBackbone',), 'neck': ('SearchableNASFPN', ...)}``);
    * ``dummy_sample(height, width)``: one data sample of that input size, for a whole-model forward in
      ``mode='tensor'`` (cost tables);
    * ``input_size(cfg)``: (H, W) the cost tables and ONNX export use when the user gives none;
    * ``features(model, x)``: the forward of the searchable parts (cost tables are built over it; what it
      leaves out is arch-independent and counted once). Default: ``model.extract_feat(x)``;
    * ``heldout_evaluators(dataset, evaluator_cfgs, work_dir)``: evaluator configs for a held-out split of
      the train set (detection writes a COCO annotation file of exactly those images). Default: unchanged;
    * ``search_evaluators(evaluator_cfgs)``: the evaluator configs search scoring uses instead of the config's
      (an exact but faster or unrounded metric). Default: unchanged;
    * ``onnx_part(subnet, parts)``: (module image -> output tensors, ONNX file name, output index -> name) of the
      fixed model, to export as ONNX;
    * ``describe(arch)``: a short text of an arch for demos and logs.
    """

    name: str
    scope: str
    metric_key: str
    metric_label: str
    searchable: Mapping[str, tuple[str, ...]]
    dummy_sample: Callable[[int, int], Any]
    input_size: Callable[[Any], tuple[int, int]]
    onnx_part: Callable[[torch.nn.Module, Mapping[str, list[str]]], tuple[torch.nn.Module, str, Callable[[int], str]]]
    features: Callable[[torch.nn.Module, torch.Tensor], Any] = _features
    heldout_evaluators: Callable[[Any, list[dict], Path], list[dict]] = _same_evaluators
    search_evaluators: Callable[[list[dict]], list[dict]] = _keep_evaluators
    describe: Callable[[Any], str] = field(default=lambda arch: " ".join(f"{k}={v}" for k, v in arch))


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Register ``task`` under its scope (a plugin package does this when imported)."""
    known = _TASKS.get(task.scope)
    if known is not None and known.name != task.name:
        raise ValueError(f"scope {task.scope!r} already belongs to the task {known.name!r}")
    _TASKS[task.scope] = task
    return task


def task_of(cfg) -> Task:
    """The task of an mmengine config, from its ``default_scope`` (the plugin is imported on first use)."""
    scope = cfg.get("default_scope")
    if scope not in PLUGINS:
        raise ValueError(f"the config's default_scope is {scope!r}; tasknas knows the scopes {sorted(PLUGINS)} "
                         "(inherit an mmdet:: or mmseg:: base, or set default_scope)")
    if scope not in _TASKS:
        importlib.import_module(PLUGINS[scope])
    return _TASKS[scope]
