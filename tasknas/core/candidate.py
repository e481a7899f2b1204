"""Scoring one candidate of a one-shot search: activate its path, recalibrate BN, evaluate.

No copy of the supernet is made per candidate (a deep copy costs +20-30% of the evaluation): the
candidate's BN statistics are written into the supernet's own BN layers on that path, which the next
candidate recalibrates again before use.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from torch import nn

from .arch import Arch, Option, set_arch
from .bn import Forward, recalibrate_bn
from .choice import modules_of


def score_candidate(model: nn.Module, arch: Mapping[str, Option] | Arch, calibration: Iterable[Any],
                    evaluate: Callable[[nn.Module], Any], forward: Forward | None = None,
                    max_batches: int | None = None, sync_bn: bool = True) -> Any:
    """``set_arch`` → ``recalibrate_bn(calibration)`` → ``evaluate(model)`` in eval mode; returns its value.

    The model's train/eval flags are restored afterwards. ``sync_bn`` as ``recalibrate_bn``'s ``sync``.
    """
    set_arch(model, arch)
    recalibrate_bn(model, calibration, forward=forward, max_batches=max_batches, sync=sync_bn)
    modules = modules_of(model)
    flags = [m.training for m in modules]
    for m in modules:  # what model.eval() does, without a Python call per module
        m.training = False
    try:
        return evaluate(model)
    finally:
        for m, flag in zip(modules, flags):
            m.training = flag
