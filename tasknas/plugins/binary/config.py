"""Configs of the binary plugin: a schema of frozen dataclasses, read from a Python file or a JSON object.

A config has the sections ``data``, ``model``, ``search``, ``train`` and a ``seed``. A Python config file
assigns plain dicts to those names (``data = dict(dataset="fashion_mnist", ...)``); a JSON config is one
object with the same keys. Every key is checked: an unknown key is an error naming it and the allowed
keys, a value of the wrong type or outside its allowed set an error naming the key and what was
expected. ``KEY=VALUE`` overrides (``search.lr=0.01``) go through the same checks. Nothing given to the
builders is modified.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import json
import os
import runpy
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

from .bats import Stage, TemperatureSchedule
from .ops import ESTIMATORS, MODES, SCALES

DATASETS = ("fashion_mnist", "cifar10")
OP_SETS = ("bats", "darts")


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
class SearchConfig:
    """The stages (binary mode, epochs), the weights' optimizer (timm name) with a cosine schedule over all
    stages, the alpha optimizer (Adam), the temperature schedule, and an optional cap of steps per epoch."""

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
    temperature: TemperatureSchedule = field(default_factory=TemperatureSchedule)
    steps_per_epoch: int | None = None

    def __post_init__(self):
        _require(len(self.stages) >= 1 and self.epochs >= 1, f"stages must hold at least one epoch, got {self.stages}")
        _at_least(self, 0, "lr", "min_lr", "weight_decay", "momentum", "grad_clip", "arch_lr", "arch_weight_decay")
        _at_least(self, 1, "steps_per_epoch")

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


def apply_overrides(values: Mapping, overrides: Sequence[str]) -> dict:
    """A copy of ``values`` with ``KEY=VALUE`` overrides; VALUE is a Python literal, or else a plain string."""
    result = copy.deepcopy(dict(values))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must be KEY=VALUE (e.g. search.lr=0.01)")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        *parents, last = key.split(".")
        node = result
        for i, part in enumerate(parents):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif dataclasses.is_dataclass(child):
                child = node[part] = dataclasses.asdict(child)
            elif not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parents[:i + 1])!r} is not a section")
            node = child
        node[last] = value
    return result


def read_config_values(path: str | os.PathLike) -> dict:
    """The raw sections of a ``.py`` or ``.json`` config file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    if path.suffix == ".json":
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a JSON config must be an object, got {type(values).__name__}")
        return values
    if path.suffix == ".py":
        namespace = runpy.run_path(str(path))
        return {k: v for k, v in namespace.items() if not k.startswith("_")
                and not isinstance(v, (types.ModuleType, types.FunctionType, type))}
    raise ValueError(f"config file {str(path)!r} must end in .py or .json")


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """Read, override and validate a config file; errors name the file and the bad key."""
    values = apply_overrides(read_config_values(path), overrides)
    try:
        return config_from_dict(values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
