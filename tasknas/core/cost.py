"""Cost lookup tables: per-option FLOPs and params (and optionally measured latency) of a supernet.

The table is built once at the task's input size with ``torch.utils.flop_counter.FlopCounterMode``:
every module choice is run on the inputs it actually receives inside the network, one option at a time.
The cost of an arch is then ``base + sum of its options`` — exactly what ``FlopCounterMode`` counts on
the fixed subnet (FlopCounterMode counts 2 FLOPs per multiply-add and does not count BN, the SPOS/DetNAS
convention; papers' "300M FLOPs" are multiply-adds: :meth:`CostTable.macs`). Looking an arch up costs
microseconds instead of a forward pass.

The table assumes a choice's cost does not depend on the other choices (true when every option of a
choice maps the same input shape to the same output shape, as in the DetNAS spaces); the builder checks
this on two archs and raises if it does not hold.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .arch import Arch, Option, Space, make_arch, set_arch, space_of
from .choice import choices_of
from .state import atomic_write_text

Forward = Callable[[nn.Module, Any], Any]
METRICS = ("flops", "params", "latency")


def _default_forward(model: nn.Module, inputs: Any) -> Any:
    return model(inputs)


def count_flops(module: nn.Module, *args, **kwargs) -> int:
    """FLOPs of one call ``module(*args, **kwargs)`` as counted by FlopCounterMode (2 per multiply-add)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return int(counter.get_total_flops())


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class CostTable:
    """``metric -> key -> option -> cost`` plus a per-metric ``base`` for everything outside the choices."""

    def __init__(self, space: Mapping[str, tuple[Option, ...]], base: Mapping[str, float],
                 options: Mapping[str, Mapping[str, Mapping[Option, float]]], input_shape: tuple | None = None):
        self.space = Space(space)
        self.base = dict(base)
        self.options = {m: {k: dict(v) for k, v in per_key.items()} for m, per_key in options.items()}
        self.input_shape = input_shape
        for metric, per_key in self.options.items():
            if sorted(per_key) != list(self.space):
                raise ValueError(f"cost table metric {metric!r} does not cover the space's keys")

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m for m in METRICS if m in self.options) + (("macs",) if "flops" in self.options else ())

    def _table(self, metric: str) -> tuple[float, dict[str, dict[Option, float]], float]:
        if metric == "macs":
            return self.base["flops"], self.options["flops"], 0.5
        if metric not in self.options:
            raise ValueError(f"cost metric {metric!r} is not in this table; available: {list(self.metrics)}")
        return self.base[metric], self.options[metric], 1.0

    def cost(self, arch: Arch, metric: str = "flops") -> float:
        base, table, scale = self._table(metric)
        return scale * (base + sum(table[key][option] for key, option in arch))

    def flops(self, arch: Arch) -> int:
        return int(self.cost(arch, "flops"))

    def macs(self, arch: Arch) -> float:
        return self.cost(arch, "macs")

    def params(self, arch: Arch) -> int:
        return int(self.cost(arch, "params"))

    def range(self, metric: str = "flops") -> tuple[float, float]:
        """Exact (min, max) of ``metric`` over all archs of the space."""
        base, table, scale = self._table(metric)
        lo = base + sum(min(table[k].values()) for k in table)
        hi = base + sum(max(table[k].values()) for k in table)
        return scale * lo, scale * hi

    def constraint(self, metric: str, lo: float | None = None, hi: float | None = None) -> CostConstraint:
        """A constraint ``lo <= metric(arch) <= hi`` (either bound may be None)."""
        self._table(metric)
        return CostConstraint(self, metric, lo, hi)

    def to_json(self) -> dict:
        return {"space": self.space.to_json(), "base": self.base, "input_shape": self.input_shape,
                "options": {m: {k: [[o, c] for o, c in v.items()] for k, v in t.items()}
                            for m, t in self.options.items()}}

    @classmethod
    def from_json(cls, data: dict) -> CostTable:
        options = {m: {k: {o: c for o, c in pairs} for k, pairs in t.items()} for m, t in data["options"].items()}
        shape = tuple(data["input_shape"]) if data.get("input_shape") is not None else None
        return cls(data["space"], data["base"], options, shape)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(self.to_json()) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> CostTable:
        return cls.from_json(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class CostConstraint:
    """``lo <= table.cost(arch, metric) <= hi``; checked from the table, before any scoring."""

    table: CostTable
    metric: str
    lo: float | None = None
    hi: float | None = None

    def __call__(self, arch: Arch) -> bool:
        value = self.table.cost(arch, self.metric)
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def check_feasible(self) -> None:
        """Raise if no arch of the space can meet this constraint."""
        low, high = self.table.range(self.metric)
        if (self.lo is not None and self.lo > high) or (self.hi is not None and self.hi < low) or \
                (self.lo is not None and self.hi is not None and self.lo > self.hi):
            raise ValueError(f"constraint {self} cannot be met: {self.metric} of this space spans "
                             f"[{low:.6g}, {high:.6g}]")

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:.6g}"
        hi = "inf" if self.hi is None else f"{self.hi:.6g}"
        return f"{self.metric} in [{lo}, {hi}]"


def _capture_choice_inputs(model: nn.Module, inputs: Any, forward: Forward) -> dict[int, list[tuple]]:
    """Run ``forward`` once (no grad) and record the (args, kwargs) of every call of every module choice."""
    calls: dict[int, list[tuple]] = {}
    hooks = []

    def hook(module, args, kwargs):
        calls.setdefault(id(module), []).append((args, kwargs))

    for choice in choices_of(model):
        if choice.holds_modules:
            hooks.append(choice.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            forward(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    return calls


def _shapes(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return tuple(obj.shape)
    if isinstance(obj, (list, tuple)):
        return tuple(_shapes(o) for o in obj)
    if isinstance(obj, dict):
        return tuple((k, _shapes(v)) for k, v in sorted(obj.items()))
    return obj


def median_seconds(fn: Callable[[], Any], repeats: int, cuda: bool = False) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up (CUDA work waited for)."""
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build_cost_table(model: nn.Module, inputs: Any, forward: Forward | None = None, *,
                     latency: bool = False, latency_repeats: int = 10) -> CostTable:
    """Build the FLOPs/params (and optionally latency, seconds) table of ``model`` at ``inputs``.

    ``forward(model, inputs)`` runs the network (default ``model(inputs)``). The model is run in eval
    mode without grad, so BN running statistics are not touched; its train/eval flags and active arch
    are restored afterwards. Measured latency is the median over ``latency_repeats`` calls of each option
    on its captured inputs, on whatever device the model and inputs live on.
    """
    forward = forward or _default_forward
    space = space_of(model)
    choices = list(choices_of(model))
    for choice in choices:
        if not choice.holds_modules:
            raise ValueError(f"value choice {choice.key!r}: the cost table supports module choices only")
        for inner in choices_of(choice.candidates):
            raise ValueError(f"choice {inner.key!r} is nested inside choice {choice.key!r}; the cost table "
                             "needs choices that do not contain other choices")
    saved_active = {id(c): c.active for c in choices}
    saved_training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        first = make_arch(space, {k: opts[0] for k, opts in space.items()})
        last = make_arch(space, {k: opts[-1] for k, opts in space.items()})
        set_arch(model, last)
        shapes_last = {i: _shapes(c) for i, c in _capture_choice_inputs(model, inputs, forward).items()}
        set_arch(model, first)
        calls = _capture_choice_inputs(model, inputs, forward)
        for choice in choices:
            if id(choice) not in calls:
                raise ValueError(f"choice {choice.key!r} was not run by the forward pass; the table cannot cost it")
            if _shapes(calls[id(choice)]) != shapes_last.get(id(choice)):
                raise ValueError(f"choice {choice.key!r} receives inputs whose shape depends on other choices; "
                                 "its cost is not additive and a lookup table cannot represent it")
        total_flops = count_flops(ForwardModule(model, forward), inputs)
        cuda = any(p.is_cuda for p in model.parameters())
        flops = {k: {o: 0.0 for o in opts} for k, opts in space.items()}
        params = {k: {o: 0.0 for o in opts} for k, opts in space.items()}
        lat = {k: {o: 0.0 for o in opts} for k, opts in space.items()} if latency else None
        in_choices: set[int] = set()
        for choice in choices:
            for option in choice.options:
                module = choice.candidates[str(option)]
                flops[choice.key][option] += sum(count_flops(module, *a, **kw) for a, kw in calls[id(choice)])
                params[choice.key][option] += count_params(module)
                in_choices.update(id(p) for p in module.parameters())
                if lat is not None:
                    with torch.no_grad():
                        lat[choice.key][option] += sum(
                            median_seconds(lambda: module(*a, **kw), latency_repeats, cuda)
                            for a, kw in calls[id(choice)])
        base_flops = total_flops - sum(flops[k][o] for k, o in first)
        base_params = sum(p.numel() for p in model.parameters() if id(p) not in in_choices)
        base = {"flops": float(base_flops), "params": float(base_params)}
        options = {"flops": flops, "params": params}
        if lat is not None:
            with torch.no_grad():
                total_lat = median_seconds(lambda: forward(model, inputs), latency_repeats, cuda)
            base["latency"] = max(0.0, total_lat - sum(lat[k][o] for k, o in first))
            options["latency"] = lat
    finally:
        for choice in choices:
            choice.active = saved_active[id(choice)]
        for module, flag in saved_training.items():
            module.training = flag
    shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else None
    return CostTable(space, base, options, shape)


class ForwardModule(nn.Module):
    """``forward(model, inputs)`` as a module of its own (for counters and exporters that take a module)."""

    def __init__(self, model: nn.Module, forward: Forward):
        super().__init__()
        self.model = model
        self._fwd = forward

    def forward(self, inputs):
        return self._fwd(self.model, inputs)
