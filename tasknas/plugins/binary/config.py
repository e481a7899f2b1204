"""Configs of the binary plugin: a schema of frozen dataclasses, filled from a config file read by mmengine.

A config has the sections ``data``, ``model``, ``search``, ``train`` and a ``seed``. The file (``.py``
assigning plain dicts to those names, ``_base_`` inheritance allowed, or a ``.json`` object) is read with
mmengine's ``Config``, and ``KEY=VALUE`` overrides (``search.lr=0.01``, values parsed as mmengine's
``DictAction`` does) are merged by it; this module then validates every key: an unknown key is an error
naming it and the allowed keys, a value of the wrong type, outside its allowed set or not finite an error
naming the key and what was expected. Nothing given to the builders is modified. Only ``mmengine.config``
is imported (lazily), never mmcv / mmdet / mmseg.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

from .bats import Stage, TemperatureSchedule
from .ops import ESTIMATORS, MODES, SCALES

DATASETS = ("fashion_mnist", "cifar10")
OP_SETS = ("bats", "darts")
ALGORITHMS = ("bats", "bnas", "cpnas")
REDUCTION_SCORES = ("mean", "ucb")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _at_least(obj: object, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(value is None or value >= minimum, f"{name} must be >= {minimum}, got {value!r}")


def _one_of(obj: object, name: str, allowed: Sequence[str]) -> None:
    value = getattr(obj, name)
    _require(value in allowed, f"{name} {value!r} is not one of {list(allowed)}")


@dataclass(frozen=True)
class DataConfig:
    """``root``: the data folder (Fashion-MNIST: None looks in the system folder, then the cache).
    ``*_subset``: how many images of a split to use (None: all), a seeded random choice.
    ``crop_padding``: augmentation by random crops of zero-padded images and flips; None: no augmentation."""

    dataset: str
    root: str | None = None
    search_subset: int | None = None
    search_val_fraction: float = 0.5
    train_subset: int | None = None
    test_subset: int | None = None
    batch_size: int = 64
    eval_batch_size: int = 256
    crop_padding: int | None = 4

    def __post_init__(self):
        _one_of(self, "dataset", DATASETS)
        _require(self.dataset != "cifar10" or bool(self.root),
                 "data.root must be the folder that holds cifar-10-batches-py (CIFAR-10 cannot be downloaded here)")
        _at_least(self, 1, "search_subset", "train_subset", "test_subset", "batch_size", "eval_batch_size")
        _at_least(self, 0, "crop_padding")
        _require(0 < self.search_val_fraction < 1,
                 f"search_val_fraction must be in (0, 1), got {self.search_val_fraction!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The op set and its binary convs, and the sizes of the search and the retrained networks."""

    op_set: str = "bats"
    groups: int = 4
    scale: str = "mean"
    weight_estimator: str = "ste"
    activation_estimator: str = "ste"
    binary_preprocess: bool = True
    steps: int = 4
    stem_multiplier: int = 3
    stem_stride: int = 1
    search_channels: int = 16
    search_layers: int = 5
    channels: int = 36
    layers: int = 8

    def __post_init__(self):
        _one_of(self, "op_set", OP_SETS)
        _one_of(self, "scale", SCALES)
        _one_of(self, "weight_estimator", tuple(ESTIMATORS))
        _one_of(self, "activation_estimator", tuple(ESTIMATORS))
        _at_least(self, 1, "groups", "steps", "stem_multiplier", "search_channels", "channels")
        _at_least(self, 3, "search_layers", "layers")
        _require(self.stem_stride in (1, 2), f"stem_stride must be 1 or 2, got {self.stem_stride!r}")


@dataclass(frozen=True)
class ReductionConfig:
    """BNAS operation-space reduction by performance (Chen et al., AAAI 2020).

    After every ``every`` epochs that trained alpha, ``samples`` single paths (one remaining op per edge,
    drawn uniformly) are scored on ``eval_batches`` held-out batches; each op is credited with the
    accuracy of every path that used it. ``score``: ``mean`` accuracy, or ``ucb`` (mean + ``ucb_c`` *
    sqrt(2 ln N / n), the upper-confidence bound of the journal version). The first reduction keeps the
    better half of every edge's ops (``keep_half``), later ones remove the worst op, until one remains."""

    every: int = 1
    samples: int = 8
    eval_batches: int = 1
    score: str = "mean"
    ucb_c: float = 1.0
    keep_half: bool = True

    def __post_init__(self):
        _at_least(self, 1, "every", "samples", "eval_batches")
        _at_least(self, 0, "ucb_c")
        _one_of(self, "score", REDUCTION_SCORES)


@dataclass(frozen=True)
class CPNASConfig:
    """CP-NAS (Zhuo et al., IJCAI 2020): ``beta`` weighs the parent-child accuracy gap in
    ``z = beta * (A_parent - A_child) + A_child``; ``kernel_lambda`` the kernel reconstruction term
    ``||W - scale * sign(W)||^2`` of the child's binary convs on the path; ``center_theta`` the optional
    intra-class compactness term on the last features (0: off); ``eval_batches`` held-out batches score
    each sampled architecture."""

    beta: float = 1.0
    kernel_lambda: float = 1e-3
    center_theta: float = 0.0
    eval_batches: int = 2

    def __post_init__(self):
        _require(self.beta >= 0, f"cpnas.beta must be >= 0 (the paper's ablation uses 0..2), got {self.beta!r}")
        _at_least(self, 0, "kernel_lambda", "center_theta")
        _at_least(self, 1, "eval_batches")


@dataclass(frozen=True)
class SearchConfig:
    """The algorithm (``bats``, ``bnas``, ``cpnas``), the stages (binary mode, epochs), the weights' optimizer
    (timm name) with a cosine schedule over all stages, the alpha optimizer (Adam), the temperature schedule,
    PC-DARTS partial channels (``partial_channels`` = K, 1: off) and edge normalization, the alpha warm-up
    (epochs with alpha frozen), BNAS's reduction, CP-NAS's settings and an optional cap of steps per epoch."""

    algorithm: str = "bats"
    stages: tuple[Stage, ...] = (Stage("activations", 25), Stage("weights_activations", 25))
    optimizer: str = "adam"
    lr: float = 1e-3
    min_lr: float = 0.0
    weight_decay: float = 0.0
    momentum: float = 0.9
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_warmup_epochs: int = 0
    temperature: TemperatureSchedule = field(default_factory=TemperatureSchedule)
    partial_channels: int = 1
    edge_norm: bool = False
    reduction: ReductionConfig = field(default_factory=ReductionConfig)
    cpnas: CPNASConfig = field(default_factory=CPNASConfig)
    steps_per_epoch: int | None = None

    def __post_init__(self):
        _one_of(self, "algorithm", ALGORITHMS)
        _require(len(self.stages) >= 1 and self.epochs >= 1, f"stages must hold at least one epoch, got {self.stages}")
        _at_least(self, 0, "lr", "min_lr", "weight_decay", "momentum", "grad_clip", "arch_lr", "arch_weight_decay",
                  "arch_warmup_epochs")
        _at_least(self, 1, "steps_per_epoch", "partial_channels")
        _require(self.arch_warmup_epochs < self.epochs or self.algorithm == "cpnas",
                 f"arch_warmup_epochs={self.arch_warmup_epochs} leaves no epoch of the {self.epochs} to train alpha")

    @property
    def epochs(self) -> int:
        return sum(stage.epochs for stage in self.stages)


@dataclass(frozen=True)
class TrainConfig:
    """Retraining the discrete network: its binary mode (``--full-precision`` makes it ``real``) and its
    optimizer (timm name) with warmup and a cosine schedule."""

    epochs: int = 50
    mode: str = "weights_activations"
    optimizer: str = "adamw"
    lr: float = 2e-3
    min_lr: float = 0.0
    weight_decay: float = 0.0
    momentum: float = 0.9
    warmup_epochs: int = 0
    grad_clip: float = 5.0
    label_smoothing: float = 0.0
    steps_per_epoch: int | None = None

    def __post_init__(self):
        _one_of(self, "mode", MODES)
        _at_least(self, 1, "epochs", "steps_per_epoch")
        _at_least(self, 0, "lr", "min_lr", "weight_decay", "momentum", "warmup_epochs", "grad_clip")
        _require(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")


@dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    def __post_init__(self):
        _at_least(self, 0, "seed")
        k, c = self.search.partial_channels, self.model.search_channels
        _require(c % k == 0, f"search.partial_channels K={k} must divide model.search_channels={c} (PC-DARTS sends "
                             "1/K of the channels through the ops)")
        if self.model.op_set == "bats":
            _require((c // k) % self.model.groups == 0,
                     f"model.groups={self.model.groups} must divide the {c // k} channels each op sees "
                     f"(model.search_channels={c} / search.partial_channels={k})")

    def to_dict(self) -> dict:
        """A JSON-able dict that :func:`config_from_dict` turns back into an equal config."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _describe(hint: object) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if dataclasses.is_dataclass(hint):
        return f"a dict with keys {[f.name for f in dataclasses.fields(hint)]}"
    if get_origin(hint) is tuple:
        return "a list"
    return getattr(hint, "__name__", str(hint)).replace("NoneType", "None")


def _convert(value: object, hint: object, where: str) -> object:
    origin, args = get_origin(hint), get_args(hint)
    bad = ValueError(f"config key {where!r} must be {_describe(hint)}, got {value!r}")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, where)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Sequence) and not isinstance(value, str) and hint is Stage and len(value) == 2:
            value = dict(zip(("mode", "epochs"), value))
        if not isinstance(value, Mapping):
            raise bad
        return _build(hint, value, where)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"config key {where!r} must be a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):
            raise ValueError(f"config key {where!r} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"config schema: no rule for {hint!r} at {where!r}")


def _build(cls: type, values: Mapping, where: str) -> object:
    names = [f.name for f in dataclasses.fields(cls)]
    prefix = f"{where}." if where else ""
    unknown = sorted(str(k) for k in values if k not in names)
    if unknown:
        raise ValueError(f"unknown config key {prefix + unknown[0]!r}; allowed keys"
                         f"{' in ' + where if where else ''}: {names}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in values]
    if missing:
        raise ValueError(f"config key {prefix}{missing[0]} is missing (required keys: {required})")
    hints = get_type_hints(cls)
    kwargs = {name: _convert(values[name], hints[name], prefix + name) for name in names if name in values}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"config {where or 'top level'}: {exc}") from None


def config_from_dict(values: Mapping) -> Config:
    """Validate ``values`` (not modified) and build the :class:`Config`."""
    if not isinstance(values, Mapping):
        raise ValueError(f"a config must be a mapping of sections, got {type(values).__name__}")
    return _build(Config, values, "")


def parse_overrides(overrides: Sequence[str]) -> dict:
    """``KEY=VALUE`` strings as mmengine's ``DictAction`` parses them (numbers, true/false, None, lists)."""
    from mmengine.config import DictAction

    options = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must be KEY=VALUE (e.g. search.lr=0.01)")
        options[key] = DictAction._parse_iterable(text)
    return options


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def read_config_values(path: str | os.PathLike, overrides: Sequence[str] = ()) -> dict:
    """The raw sections of a ``.py`` or ``.json`` config file, read and overridden by mmengine's ``Config``."""
    from mmengine.config import Config as FileConfig

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    if path.suffix not in (".py", ".json"):
        raise ValueError(f"config file {str(path)!r} must end in .py or .json")
    options = parse_overrides(overrides)
    try:
        cfg = FileConfig.fromfile(str(path))
    except SyntaxError as exc:
        raise ValueError(f"{path}: syntax error at line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # mmengine raises many types for a broken file; one line names it
        raise ValueError(f"{path}: cannot be read as a config ({_first_line(exc)})") from None
    try:
        cfg.merge_from_dict(options, allow_list_keys=True)
    except Exception as exc:
        raise ValueError(f"{path}: overrides {sorted(options)} do not fit the config ({_first_line(exc)})") from None
    values = cfg.to_dict()
    return {k: v for k, v in values.items() if not str(k).startswith("_")
            and not isinstance(v, (types.ModuleType, types.FunctionType, type))}


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """Read, override and validate a config file; errors name the file and the bad key."""
    values = read_config_values(path, overrides)
    try:
        return config_from_dict(values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
