"""Configs of supernet pre-training and the ranking report: frozen dataclasses read from an mmengine config file.

A config file (read with ``mmengine.config.Config``, which gives ``_base_`` inheritance; nothing else of
OpenMMLab is used) assigns plain dicts to the sections ``model``, ``data``, ``train``, ``sampler``, ``rank``
and an integer ``seed``. Every key is checked: an unknown key is an error naming it and the allowed keys; a
value of the wrong type or outside its allowed set is an error naming the key and what was expected.
``KEY=VALUE`` overrides (``train.epochs=2``) go through the same checks. Nothing given is modified.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

DATASETS = ("fashion_mnist", "image_folder", "generated")
SAMPLINGS = ("uniform", "flops", "fair", "greedy")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _positive(obj: object, *names: str, minimum: float = 1) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(value is None or value >= minimum, f"{name} must be >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """``space``: a registered core space; ``last_channels``: the 1×1 conv before the linear classifier."""

    space: str = "detnas_shufflenet_fmnist"
    last_channels: int = 256

    def __post_init__(self):
        _positive(self, "last_channels")


@dataclass(frozen=True)
class DataConfig:
    """``root``: the data folder (Fashion-MNIST: None looks in the Debian folder, then the fetch script's cache;
    image_folder: holds ``train/<class>/*`` and optionally ``val/<class>/*``). ``channels``: 1 or 3 (grey
    images are repeated to 3 channels for a backbone that takes RGB). ``image_size``: resize to this square
    size (None: keep). ``held_out``: training images set aside, never trained on, for the ranking report
    (and GreedyNAS's held-out batches come from the training part). ``generated_images``: size of the
    generated shapes set (dataset ``generated``)."""

    dataset: str = "fashion_mnist"
    root: str | None = None
    channels: int = 1
    image_size: int | None = None
    held_out: int = 10000
    train_subset: int | None = None
    generated_images: int = 2000
    batch_size: int = 128
    eval_batch_size: int = 500
    crop_padding: int | None = None
    flip: bool = False

    def __post_init__(self):
        _require(self.dataset in DATASETS, f"dataset {self.dataset!r} is not one of {list(DATASETS)}")
        _require(self.channels in (1, 3), f"channels must be 1 or 3, got {self.channels!r}")
        _positive(self, "held_out", "generated_images", "batch_size", "eval_batch_size", "train_subset")
        _positive(self, "image_size", minimum=8)
        _positive(self, "crop_padding", minimum=0)


@dataclass(frozen=True)
class TrainConfig:
    """timm optimizer ``optimizer`` (sgd = Nesterov SGD), timm cosine schedule updated every step, linear
    warm-up, label smoothing. Weight decay applies to conv/linear weights only."""

    epochs: int = 3
    optimizer: str = "sgd"
    lr: float = 0.1
    min_lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_epochs: int = 0
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0

    def __post_init__(self):
        _positive(self, "epochs")
        _positive(self, "warmup_epochs", minimum=0)
        _require(self.lr > 0 and self.min_lr >= 0, f"lr must be > 0 and min_lr >= 0, got {self.lr!r}, {self.min_lr!r}")
        _require(0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        _require(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0 or None, got {self.grad_clip!r}")


@dataclass(frozen=True)
class SamplerConfig:
    """``type``: uniform (SPOS), flops (SPOS, uniform inside ``num_bins`` FLOPs bins), fair (FairNAS strict
    fairness: all options once per step, gradients of the m paths accumulated, one optimizer step), greedy
    (GreedyNAS: ``candidates`` paths drawn, the ``keep`` with the lowest loss on a held-out batch of
    ``greedy_batch`` images trained with accumulated gradients, a pool of ``pool_size`` good paths drawn
    from with a probability ramped over ``pool_prob``); ``greedy_images``: training images set aside for
    those held-out batches; ``greedy_base``: uniform or flops, the exploration sampler."""

    type: str = "uniform"
    num_bins: int = 7
    candidates: int = 10
    keep: int = 5
    pool_size: int = 1000
    pool_prob: tuple[float, float] = (0.0, 0.8)
    greedy_images: int = 1000
    greedy_batch: int = 200
    greedy_base: str = "uniform"

    def __post_init__(self):
        _require(self.type in SAMPLINGS, f"sampler type {self.type!r} is not one of {list(SAMPLINGS)}")
        _require(self.greedy_base in ("uniform", "flops"),
                 f"greedy_base {self.greedy_base!r} is not one of ['uniform', 'flops']")
        _positive(self, "num_bins", "candidates", "keep", "pool_size", "greedy_images", "greedy_batch")
        _require(self.keep <= self.candidates, f"keep ({self.keep}) must be <= candidates ({self.candidates})")


@dataclass(frozen=True)
class StandaloneConfig:
    """The fixed short from-scratch recipe of the ranking report (EcoNAS: more data, fewer epochs): each arch
    trained alone for ``epochs`` on ``images`` training images, scored on the held-out split."""

    epochs: int = 1
    images: int = 20000
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 4e-5
    label_smoothing: float = 0.0

    def __post_init__(self):
        _positive(self, "epochs", "images", "batch_size")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr!r}")


@dataclass(frozen=True)
class RankConfig:
    """``archs``: distinct archs stratified over the FLOPs range; ``scan``: random archs scored on the supernet
    (recalibrated on ``scan_calib_images``, scored on ``scan_eval_images`` held-out images), whose ``top`` best
    join the report (none when ``scan`` is 0); ``calib_images``: training images for each arch's BN
    recalibration; ``eval_images``: held-out images scored per arch (None: all); ``noise_archs``: archs (evenly
    spread over the stratified ones) trained with the second seed for the noise ceiling; ``k``: of precision@k /
    best-true-rank@k; ``resolution``: percentage points below which the sparse τ counts a difference as a tie;
    ``bootstrap``: resamples of the 95 % intervals; ``seeds``: the two stand-alone seeds."""

    archs: int = 24
    scan: int = 200
    top: int = 3
    scan_calib_images: int = 500
    scan_eval_images: int = 1000
    calib_images: int = 2000
    eval_images: int | None = None
    noise_archs: int = 8
    k: int = 5
    resolution: float = 0.1
    bootstrap: int = 2000
    seeds: tuple[int, int] = (0, 1)
    standalone: StandaloneConfig = field(default_factory=StandaloneConfig)

    def __post_init__(self):
        _positive(self, "archs", "calib_images", "eval_images", "bootstrap", "k", "scan_calib_images",
                  "scan_eval_images")
        _positive(self, "scan", "top", minimum=0)
        _require(self.archs >= 3, f"archs must be >= 3 (a rank correlation needs several points), got {self.archs}")
        _require(2 <= self.noise_archs <= self.archs,
                 f"noise_archs must be in [2, archs={self.archs}], got {self.noise_archs!r}")
        _require(self.resolution >= 0, f"resolution must be >= 0 percentage points, got {self.resolution!r}")
        _require(self.seeds[0] != self.seeds[1], f"the two stand-alone seeds must differ, got {list(self.seeds)}")


@dataclass(frozen=True)
class PretrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    seed: int = 0

    def __post_init__(self):
        _positive(self, "seed", minimum=0)

    def to_dict(self) -> dict:
        """A JSON-able dict that :func:`config_from_dict` turns back into an equal config."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _describe(hint: object) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if dataclasses.is_dataclass(hint):
        return f"a dict with keys {[f.name for f in dataclasses.fields(hint)]}"
    if get_origin(hint) is tuple:
        return f"a list of {len(get_args(hint))} numbers"
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
        if not isinstance(value, Mapping):
            raise bad
        return _build(hint, value, where)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != len(args):
            raise bad
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if hint in (int, float, str):
        ok = isinstance(value, str) if hint is str else (not isinstance(value, bool) and isinstance(value, hint)) or \
            (hint is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise bad
        return hint(value)
    raise TypeError(f"config schema: no rule for {hint!r} at {where!r}")


def _build(cls: type, values: Mapping, where: str) -> object:
    names = [f.name for f in dataclasses.fields(cls)]
    prefix = f"{where}." if where else ""
    unknown = sorted(str(k) for k in values if k not in names)
    if unknown:
        raise ValueError(f"unknown config key {prefix + unknown[0]!r}; allowed keys{' in ' + where if where else ''}: "
                         f"{names}")
    hints = get_type_hints(cls)
    kwargs = {name: _convert(values[name], hints[name], prefix + name) for name in names if name in values}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"config {where or 'top level'}: {exc}") from None


def config_from_dict(values: Mapping) -> PretrainConfig:
    """Validate ``values`` (not modified) and build the :class:`PretrainConfig`."""
    if not isinstance(values, Mapping):
        raise ValueError(f"a config must be a mapping of sections, got {type(values).__name__}")
    return _build(PretrainConfig, values, "")


def apply_overrides(values: Mapping, overrides: Mapping[str, object]) -> dict:
    """A copy of ``values`` with dotted-key overrides (``{"train.epochs": 2}``, as mmengine's DictAction gives)."""
    result = copy.deepcopy(dict(values))
    for key in sorted(overrides):
        *parents, last = key.split(".")
        node = result
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {key!r}: {'.'.join(parents[:i + 1])!r} is not a section")
            node = child
        node[last] = overrides[key]
    return result


def load_config(path: str | os.PathLike, overrides: Mapping[str, object] | None = None) -> PretrainConfig:
    """Read an mmengine config file (``.py``), apply overrides, validate; errors name the file and the key."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    values = _plain(Config.fromfile(str(path)).to_dict())
    values = apply_overrides(values, overrides or {})
    try:
        return config_from_dict(values)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _plain(obj: object) -> object:
    """ConfigDicts and lists of an mmengine config as plain dicts and lists."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
