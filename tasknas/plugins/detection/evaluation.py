"""Scoring detection candidates: the detector, its data, BN calibration, the config's own evaluator, costs.

Everything is built from an mmdet config without a Runner (no logger, no work_dir side effects):

* :func:`build_detector` — the config's model, with supernet weights read by ``weights_only=True``;
* :func:`calibration_batches` — N training images through the *test* pipeline (deterministic: the same
  images in the same order for every candidate and after a resume), never the evaluation split;
* :class:`DetectionScorer` — activate → recalibrate BN → run the evaluation split → the config's own
  evaluator (CocoMetric: ``bbox_mAP``). Each rank evaluates on its own (a sharded search gives every rank
  different candidates), so the loaders are plain sequential ones and metrics are computed per process;
* :func:`detector_cost_table` — FLOPs/params of the whole detector (or of the backbone alone) at the
  config's input size: the searchable part from the core's lookup table, the fixed rest counted once.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from mmdet.registry import DATASETS, METRICS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from torch.utils.data import DataLoader, Subset

from ...core import Arch, CostTable, build_cost_table, choices_of, count_flops, score_candidate, set_arch, space_of
from ...core.cost import ForwardModule, median_seconds
from .split import write_split_annotations


def load_config(config: str | os.PathLike | Config, options: dict | None = None) -> Config:
    """The config at ``config`` (or a copy of a Config object) with ``options`` merged in."""
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)  # Config.copy() is shallow: never mutate the caller's config
    else:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"config {str(path)!r} does not exist")
        cfg = Config.fromfile(str(path))
    if options:
        cfg.merge_from_dict(options)
    init_default_scope(cfg.get("default_scope", "mmdet"))
    return cfg


def read_supernet_weights(checkpoint: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Plain tensors from ``checkpoint`` (``weights_only=True``): a state_dict, or ``{"state_dict": ...}``."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises UnpicklingError or RuntimeError subclasses)
        raise ValueError(f"checkpoint {str(path)!r} cannot be read as plain tensors (weights_only=True): "
                         f"{str(exc).splitlines()[0]}. Pass the supernet.pth that `tasknas train` writes, not "
                         "a Runner training checkpoint (iter_*.pth / epoch_*.pth)") from None
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {str(path)!r} holds no state_dict of tensors")
    return state


def build_detector(cfg: Config, checkpoint: str | os.PathLike | None = None,
                   device: str | torch.device | None = None) -> torch.nn.Module:
    """The config's detector, optionally with the supernet weights of ``checkpoint`` (all keys must match)."""
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        state = read_supernet_weights(checkpoint)
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            raise ValueError(
                f"checkpoint {str(checkpoint)!r} does not fit this config's supernet "
                f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrongly shaped tensors; "
                f"e.g. {(missing or unexpected or wrong)[:3]}): was it trained with another space or config?")
        model.load_state_dict(state)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device)


@contextlib.contextmanager
def quiet():
    """Silence what pycocotools prints and mmengine's INFO log lines (one set per candidate otherwise)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _dataset(cfg_dataset: dict, pipeline: list | None = None):
    cfg_dataset = copy.deepcopy(dict(cfg_dataset))
    inner = cfg_dataset["dataset"] if cfg_dataset.get("type") == "HeldOutSplit" else cfg_dataset
    if pipeline is not None:
        inner["pipeline"] = pipeline
    where = f"dataset {inner.get('ann_file')!r} under {inner.get('data_root')!r}"
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
    """One calibration batch through the detector (data preprocessor, then backbone/neck/head in tensor mode)."""
    model(**model.data_preprocessor(batch, False), mode="tensor")


def calibration_batches(cfg: Config, num_images: int, batch_size: int = 8, seed: int = 0) -> list:
    """``num_images`` training images (a seeded choice) through the test pipeline, as collated batches.

    With a ``HeldOutSplit`` train dataset they come from its training part, never from the held-out one.
    """
    if num_images < 1:
        raise ValueError(f"calibration needs at least 1 image, got {num_images}")
    dataset = _dataset(cfg.train_dataloader.dataset, _test_pipeline(cfg))
    picks = sorted(random.Random(seed).sample(range(len(dataset)), min(num_images, len(dataset))))
    loader = DataLoader(Subset(dataset, picks), batch_size=batch_size, shuffle=False, collate_fn=pseudo_collate)
    return list(loader)


SPLITS = ("val", "test", "heldout")


def _as_list(evaluators) -> list:
    return list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]


class DetectionScorer:
    """``scorer(arch)`` → ``{"score": bbox mAP, other metrics...}`` for the supernet ``model``.

    An evaluation split of at most ``cache_images`` images is loaded once and kept in memory (decoded,
    resized); a larger one is streamed from disk for every candidate.
    """

    def __init__(self, cfg: Config, model: torch.nn.Module, calibration: Sequence, split: str = "val",
                 metric_key: str = "bbox_mAP", work_dir: str | os.PathLike | None = None, cache_images: int = 1000):
        if split not in SPLITS:
            raise ValueError(f"evaluation split must be one of {list(SPLITS)}, got {split!r}")
        if split == "heldout":
            train = cfg.train_dataloader.dataset
            if train.get("type") != "HeldOutSplit":
                raise ValueError("--split heldout needs the config's train dataset wrapped in "
                                 "dict(type='HeldOutSplit', dataset=..., part='train', held_out=N), so the "
                                 f"supernet never trains on the held-out images; it is {train.get('type')!r}")
            if work_dir is None:
                raise ValueError("the held-out split needs a work_dir for its annotation file")
            self.dataset = _dataset(dict(train, part="heldout"), _test_pipeline(cfg))
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            name = "heldout_annotations.json" if rank == 0 else f"heldout_annotations.rank{rank}.json"
            ann_file = write_split_annotations(self.dataset, Path(work_dir) / name)
            evaluators = [dict(c, ann_file=str(ann_file)) for c in _as_list(cfg.val_evaluator)]
            batch_size = cfg.val_dataloader.get("batch_size", 1)
        else:
            loader_cfg = cfg[f"{split}_dataloader"]
            self.dataset = _dataset(loader_cfg.dataset)
            evaluators = _as_list(cfg[f"{split}_evaluator"])
            batch_size = loader_cfg.get("batch_size", 1)
        self.loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=False, collate_fn=pseudo_collate)
        if len(self.dataset) <= cache_images:  # small splits: decode and transform once, not per candidate
            self.loader = list(self.loader)
        with quiet():  # CocoMetric loads its annotation file with pycocotools, which prints
            self.metrics = [METRICS.build(c) for c in evaluators]
        for metric in self.metrics:
            metric.dataset_meta = self.dataset.metainfo
        self.model = model
        self.calibration = calibration
        self.metric_key = metric_key

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        for batch in self.loader:
            outputs = [o.to_dict() for o in model.test_step(batch)]  # what mmengine's Evaluator hands metrics
            for metric in self.metrics:
                metric.process(batch, outputs)
        values: dict[str, float] = {}
        for metric in self.metrics:
            with quiet():  # COCOeval prints its summary table
                computed = metric.compute_metrics(metric.results)
            metric.results.clear()
            values.update({k: float(v) for k, v in computed.items() if isinstance(v, (int, float))})
        return values

    def __call__(self, arch: Arch) -> dict[str, float]:
        # Local BN statistics: in a sharded search every rank scores its own candidate on all calibration images.
        values = score_candidate(self.model, arch, self.calibration, self.evaluate, forward=calibration_forward,
                                 sync_bn=False)
        if self.metric_key not in values:
            raise ValueError(f"the evaluator gave no {self.metric_key!r}; it gave {sorted(values)}")
        return {"score": values[self.metric_key], **values}


def _dummy_sample(height: int, width: int) -> DetDataSample:
    sample = DetDataSample()
    sample.set_metainfo({"img_shape": (height, width), "ori_shape": (height, width), "pad_shape": (height, width),
                         "batch_input_shape": (height, width), "scale_factor": (1.0, 1.0)})
    return sample


def detector_cost_table(model: torch.nn.Module, input_size: tuple[int, int], backbone_only: bool = False,
                        latency: bool = False) -> CostTable:
    """Per-option FLOPs/params (and, with ``latency``, measured seconds at batch 1 on the model's device) at
    ``input_size`` (H, W): of the backbone alone, or of the whole detector (the searchable part from the
    lookup table; the rest, which does not depend on the arch, measured once and added to the base)."""
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, *input_size, device=device)
    if backbone_only:
        outside = sorted(set(space_of(model)) - set(space_of(model.backbone)))
        if outside:
            raise ValueError(f"backbone-only costs cannot constrain the choices outside the backbone (e.g. "
                             f"{outside[0]!r}); drop --backbone-only to constrain the whole detector")
        return build_cost_table(model.backbone, x, forward=lambda m, inp: m(inp), latency=latency)
    table = build_cost_table(model, x, forward=lambda m, inp: m.extract_feat(inp), latency=latency)
    space = space_of(model)
    probe = Arch((key, options[0]) for key, options in space.items())
    previous = [(c, c.active) for c in choices_of(model)]
    set_arch(model, probe)
    training = model.training
    model.eval()
    samples = [_dummy_sample(*input_size)]
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


def input_size_of(cfg: Config) -> tuple[int, int]:
    """(H, W) of the config's test-time Resize (mmdet scales are (W, H)); the input of the cost tables."""
    for step in cfg.test_dataloader.dataset.get("pipeline", []):
        if step.get("type") == "Resize" and "scale" in step:
            w, h = step["scale"]
            return int(h), int(w)
    raise ValueError("cannot find a Resize with `scale` in the config's test pipeline; pass --input-size H W")

