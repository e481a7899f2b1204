"""BATS: the binary-friendly cell space, the softmax temperature schedule and the 2-stage search plan.

After Bulat, Martinez and Tzimiropoulos, "BATS: Binary ArchitecTure Search" (ECCV 2020):

* the DARTS space made binary-friendly: grouped convolutions instead of depthwise ones, each conv op a
  unit ``BN -> binary conv -> PReLU`` followed by a channel shuffle (the grouped conv's replacement for the
  1x1 mixing of a separable conv), with a skip connection around it;
* ``softmax(alpha / T)`` with a temperature schedule, against the collapse onto parameter-free ops;
* a 2-stage search: binary activations with real weights first, then weights and activations binary.

Values of the paper that could not be confirmed here (the group count, the exact schedule of T, the
epochs of each stage, the reduction skip) are parameters; docs/binary.md lists them with the defaults.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .darts import OpSet, Zero
from .ops import ESTIMATORS, MODES, SCALES, BinaryConv2d, channel_shuffle

BATS_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "group_conv_3x3", "group_conv_5x5",
            "dil_group_conv_3x3", "dil_group_conv_5x5")
TEMPERATURE_KINDS = ("constant", "linear", "exponential", "cosine")


def _halve() -> nn.Module:
    """2x2 average pooling; odd sizes round up, like a stride-2 conv with 'same' padding."""
    return nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)


class BinaryConvUnit(nn.Sequential):
    """``BN -> binary conv -> PReLU`` (the BN in front sets the threshold of the sign)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, groups: int, affine: bool,
                 binary: dict):
        padding = dilation * (kernel - 1) // 2
        super().__init__(nn.BatchNorm2d(c_in, affine=affine),
                         BinaryConv2d(c_in, c_out, kernel, stride, padding, dilation, groups, **binary),
                         nn.PReLU(c_out))


class BatsConvOp(nn.Module):
    """A BATS conv op: ``shuffle(unit(x)) + shortcut(x)``; the shortcut halves the resolution at stride 2."""

    def __init__(self, channels: int, kernel: int, stride: int, dilation: int, groups: int, affine: bool,
                 binary: dict):
        super().__init__()
        if channels % groups:
            raise ValueError(f"BATS grouped conv: groups={groups} must divide the {channels} channels of the cell "
                             "(set model.groups, or channels to a multiple of it)")
        self.groups = groups
        self.unit = BinaryConvUnit(channels, channels, kernel, stride, dilation, groups, affine, binary)
        self.shortcut = nn.Identity() if stride == 1 else _halve()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(self.unit(x), self.groups) + self.shortcut(x)


def bats_op_set(groups: int = 4, mode: str = "weights_activations", scale: str = "mean",
                weight_estimator: str = "ste", activation_estimator: str = "ste",
                binary_preprocess: bool = True) -> OpSet:
    """The BATS op set. ``mode`` and the rest configure every :class:`BinaryConv2d` (``mode="real"`` gives
    the full-precision twin). With ``binary_preprocess=False`` the 1x1 preprocessing convs stay real."""
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    binary = {"mode": mode, "scale": scale, "weight_estimator": weight_estimator,
              "activation_estimator": activation_estimator}
    for name, value, allowed in (("mode", mode, MODES), ("scale", scale, SCALES),
                                 ("weight_estimator", weight_estimator, tuple(ESTIMATORS)),
                                 ("activation_estimator", activation_estimator, tuple(ESTIMATORS))):
        if value not in allowed:
            raise ValueError(f"{name} {value!r} is not one of {list(allowed)}")

    def conv(kernel: int, dilation: int):
        return lambda c, stride, affine: BatsConvOp(c, kernel, stride, dilation, groups, affine, binary)

    def pool(layer: type[nn.Module]):
        def build(c: int, stride: int, affine: bool) -> nn.Module:
            extra = {"count_include_pad": False} if layer is nn.AvgPool2d else {}
            return nn.Sequential(layer(3, stride=stride, padding=1, **extra), nn.BatchNorm2d(c, affine=affine))
        return build

    def skip(c: int, stride: int, affine: bool) -> nn.Module:
        return nn.Identity() if stride == 1 else nn.Sequential(_halve(), nn.BatchNorm2d(c, affine=affine))

    def adapter(c_in: int, c_out: int, affine: bool) -> nn.Module:
        if binary_preprocess:
            return BinaryConvUnit(c_in, c_out, 1, 1, 1, 1, affine, binary)
        return nn.Sequential(nn.BatchNorm2d(c_in, affine=affine), nn.Conv2d(c_in, c_out, 1, bias=False),
                             nn.PReLU(c_out))

    ops = {"none": lambda c, stride, affine: Zero(stride), "max_pool_3x3": pool(nn.MaxPool2d),
           "avg_pool_3x3": pool(nn.AvgPool2d), "skip_connect": skip,
           "group_conv_3x3": conv(3, 1), "group_conv_5x5": conv(5, 1),
           "dil_group_conv_3x3": conv(3, 2), "dil_group_conv_5x5": conv(5, 2)}
    return OpSet(ops, preprocess=adapter,
                 reduce_preprocess=lambda c_in, c_out, affine: nn.Sequential(_halve(), adapter(c_in, c_out, affine)))


@dataclass(frozen=True)
class TemperatureSchedule:
    """The softmax temperature T per search epoch, from ``start`` (first epoch) to ``end`` (last epoch).

    ``kind``: ``constant`` (always ``start``), ``linear``, ``exponential`` (geometric) or ``cosine``.
    """

    start: float = 1.0
    end: float = 0.2
    kind: str = "exponential"

    def __post_init__(self):
        if self.kind not in TEMPERATURE_KINDS:
            raise ValueError(f"temperature kind {self.kind!r} is not one of {list(TEMPERATURE_KINDS)}")
        for name in ("start", "end"):
            value = getattr(self, name)
            finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not (finite and value > 0):
                raise ValueError(f"temperature {name} must be a finite number > 0, got {value!r}")

    def at(self, epoch: int, epochs: int) -> float:
        if not 0 <= epoch < epochs:
            raise ValueError(f"epoch {epoch} is outside 0..{epochs - 1}")
        if self.kind == "constant":
            return float(self.start)
        t = epoch / (epochs - 1) if epochs > 1 else 0.0
        if self.kind == "linear":
            return self.start + (self.end - self.start) * t
        if self.kind == "exponential":
            return self.start * (self.end / self.start) ** t
        return self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Stage:
    """A stage of the search: ``epochs`` epochs with every binary conv in ``mode``."""

    mode: str
    epochs: int

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"stage mode {self.mode!r} is not one of {list(MODES)}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"stage epochs must be an int >= 0, got {self.epochs!r}")


def stage_at(stages: Sequence[Stage], epoch: int) -> tuple[int, Stage]:
    """The index and stage that search epoch ``epoch`` (0-based, over all stages) belongs to."""
    start = 0
    for index, stage in enumerate(stages):
        if epoch < start + stage.epochs:
            return index, stage
        start += stage.epochs
    raise ValueError(f"epoch {epoch} is past the {start} epochs of the stages")
