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

Value choices (a NAS-FPN cell's output level, a BiFPN node's inputs, a depth) hold no modules of their own:
their cost is measured by probing the whole network — the reference arch with one key changed at a time —
on a ``meta``-device copy (shapes only: FLOPs and the fixed subnet's params without computing anything).
A gated choice (see :class:`~tasknas.core.Choice`) counts only while its gate is open; the reference arch
opens every gate. The builder then compares the table with a full count on a few random archs and raises if
they differ, so a table is either exact or refused.
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import random
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
from .subnet import _self_fixing, fix

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
                 options: Mapping[str, Mapping[str, Mapping[Option, float]]], input_shape: tuple | None = None,
                 gates: Mapping[str, tuple[str, tuple[Option, ...]]] | None = None):
        self.space = Space(space)
        self.base = dict(base)
        self.options = {m: {k: dict(v) for k, v in per_key.items()} for m, per_key in options.items()}
        self.input_shape = input_shape
        self.gates = {k: (g, tuple(opts)) for k, (g, opts) in sorted((gates or {}).items())}
        for metric, per_key in self.options.items():
            if sorted(per_key) != list(self.space):
                raise ValueError(f"cost table metric {metric!r} does not cover the space's keys")
        for key, (gate_key, opts) in self.gates.items():
            if key not in self.space or gate_key not in self.space or gate_key in self.gates \
                    or not set(opts) <= set(self.space[gate_key]):
                raise ValueError(f"gate of {key!r} must name an ungated key of the space and some of its options, "
                                 f"got {(gate_key, opts)!r}")

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
        if not self.gates:
            return scale * (base + sum(table[key][option] for key, option in arch))
        chosen = dict(arch)
        return scale * (base + sum(table[key][option] for key, option in arch if self._open(key, chosen)))

    def _open(self, key: str, chosen: Mapping[str, Option]) -> bool:
        gate = self.gates.get(key)
        return gate is None or chosen[gate[0]] in gate[1]

    def flops(self, arch: Arch) -> int:
        return int(self.cost(arch, "flops"))

    def macs(self, arch: Arch) -> float:
        return self.cost(arch, "macs")

    def params(self, arch: Arch) -> int:
        return int(self.cost(arch, "params"))

    def range(self, metric: str = "flops") -> tuple[float, float]:
        """Exact (min, max) of ``metric`` over all archs of the space."""
        base, table, scale = self._table(metric)
        gate_keys = sorted({g for g, _ in self.gates.values()})
        combos = 1
        for key in gate_keys:
            combos *= len(self.space[key])
        if combos > 100_000:
            raise ValueError(f"the gates of this table span {combos} combinations; range() enumerates at most 100000")
        lo = hi = None
        for values in itertools.product(*(self.space[k] for k in gate_keys)):
            fixed = dict(zip(gate_keys, values))
            a = b = base + sum(table[k][o] for k, o in fixed.items())
            for key in table:
                if key in fixed or not self._open(key, fixed):
                    continue
                a += min(table[key].values())
                b += max(table[key].values())
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        return scale * lo, scale * hi

    def constraint(self, metric: str, lo: float | None = None, hi: float | None = None) -> CostConstraint:
        """A constraint ``lo <= metric(arch) <= hi`` (either bound may be None)."""
        self._table(metric)
        return CostConstraint(self, metric, lo, hi)

    def to_json(self) -> dict:
        return {"space": self.space.to_json(), "base": self.base, "input_shape": self.input_shape,
                "options": {m: {k: [[o, c] for o, c in v.items()] for k, v in t.items()}
                            for m, t in self.options.items()},
                "gates": {k: [g, list(opts)] for k, (g, opts) in self.gates.items()}}

    @classmethod
    def from_json(cls, data: dict) -> CostTable:
        options = {m: {k: {o: c for o, c in pairs} for k, pairs in t.items()} for m, t in data["options"].items()}
        shape = tuple(data["input_shape"]) if data.get("input_shape") is not None else None
        gates = {k: (g, tuple(opts)) for k, (g, opts) in data.get("gates", {}).items()}
        return cls(data["space"], data["base"], options, shape, gates)

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


def _record_calls(modules: list[nn.Module], model: nn.Module, inputs: Any, forward: Forward) -> dict[int, list[tuple]]:
    """Run ``forward`` once (no grad) and record the (args, kwargs) of every call of each of ``modules``."""
    calls: dict[int, list[tuple]] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a, kw: calls.setdefault(id(mod), []).append((a, kw)),
                                         with_kwargs=True) for m in modules]
    try:
        with torch.no_grad():
            forward(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    return calls


def _capture_choice_inputs(model: nn.Module, inputs: Any, forward: Forward) -> dict[int, list[tuple]]:
    """The (args, kwargs) of every call of every module choice in one forward pass."""
    return _record_calls([c for c in choices_of(model) if c.holds_modules], model, inputs, forward)


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


def _gates_of(choices, space: Space) -> dict[str, tuple[str, tuple[Option, ...]]]:
    gates: dict[str, tuple[str, tuple[Option, ...]]] = {}
    for choice in choices:
        if choice.gate is None:
            continue
        if gates.setdefault(choice.key, choice.gate) != choice.gate:
            raise ValueError(f"choices with key {choice.key!r} have different gates")
        if choice.gate[0] not in space:
            raise ValueError(f"choice {choice.key!r} is gated by {choice.gate[0]!r}, which is not a key of the space")
    return gates


def _reference_arch(space: Space, gates: Mapping[str, tuple[str, tuple[Option, ...]]]) -> Arch:
    """First option everywhere, except gate keys: an option that opens every gate they control."""
    chosen = {k: opts[0] for k, opts in space.items()}
    for gate_key in sorted({g for g, _ in gates.values()}):
        common = [o for o in space[gate_key] if all(o in opts for g, opts in gates.values() if g == gate_key)]
        if not common:
            raise ValueError(f"no option of {gate_key!r} opens all the gates it controls; a cost table needs one")
        chosen[gate_key] = common[-1]
    return make_arch(space, chosen)


def _to_meta(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to("meta")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_meta(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_meta(v) for k, v in obj.items()}
    return obj


def _probe_target(model: nn.Module, value_choices: list, inputs: Any,
                  forward: Forward) -> tuple[nn.Module, list] | None:
    """The deepest submodule that contains every value choice and is called by the forward pass, with the
    (args, kwargs) of its calls: probing it alone gives the same cost differences as the whole network.
    None when there is none below ``model``."""
    names = {id(m): n for n, m in model.named_modules()}
    parts = [names[id(c)].split(".")[:-1] for c in value_choices]
    common = parts[0]
    for other in parts[1:]:
        k = 0
        while k < min(len(common), len(other)) and common[k] == other[k]:
            k += 1
        common = common[:k]
    chain = [model.get_submodule(".".join(common[:i])) for i in range(len(common) + 1)]
    calls = _record_calls(chain[1:], model, inputs, forward)
    for module in reversed(chain[1:]):
        if id(module) in calls:
            return module, calls[id(module)]
    return None


class _Prober:
    """FLOPs (and the fixed subnet's params) of ``module`` over its recorded calls, for one arch at a time.

    Runs on a ``meta`` copy (shapes only) when the real calls would cost more than ~0.2 GFLOPs and the module
    runs there; small modules are faster to run for real.
    """

    def __init__(self, module: nn.Module, calls: list, run: Callable[[nn.Module, list], Any] | None = None):
        self.run = run or (lambda m, c: [m(*a, **kw) for a, kw in c])
        self.module, self.calls = module, calls
        self.space = space_of(module)
        if self.flops_now() > 2e8:
            try:
                meta = copy.deepcopy(module).to("meta").eval()
                meta_calls = _to_meta(calls)
                count_flops(ForwardModule(meta, self.run), meta_calls)
                self.module, self.calls = meta, meta_calls
            except Exception:  # noqa: BLE001  (an op without a meta kernel: keep probing the real module)
                pass

    def flops_now(self) -> float:
        return float(count_flops(ForwardModule(self.module, self.run), self.calls))

    def flops(self, arch: Arch) -> float:
        set_arch(self.module, {k: arch[k] for k in self.space})
        return self.flops_now()

    def params(self, arch: Arch) -> float:
        return float(count_params(fix(self.module, {k: arch[k] for k in self.space})))


def build_cost_table(model: nn.Module, inputs: Any, forward: Forward | None = None, *,
                     latency: bool = False, latency_repeats: int = 10, check_archs: int = 3) -> CostTable:
    """Build the FLOPs/params (and optionally latency, seconds) table of ``model`` at ``inputs``.

    ``forward(model, inputs)`` runs the network (default ``model(inputs)``). The model is run in eval
    mode without grad, so BN running statistics are not touched; its train/eval flags and active arch
    are restored afterwards. Measured latency is the median over ``latency_repeats`` calls of each option
    on its captured inputs, on whatever device the model and inputs live on (value choices: the difference
    of whole-network medians). With value choices the table is checked against a full count on
    ``check_archs`` random archs (seeded) and refused if it differs.
    """
    forward = forward or _default_forward
    space = space_of(model)
    choices = list(choices_of(model))
    gates = _gates_of(choices, space)
    module_choices = [c for c in choices if c.holds_modules]
    module_keys = sorted({c.key for c in module_choices})
    value_keys = sorted({c.key for c in choices if not c.holds_modules})
    for choice in module_choices:
        for inner in choices_of(choice.candidates):
            raise ValueError(f"choice {inner.key!r} is nested inside choice {choice.key!r}; the cost table "
                             "needs choices that do not contain other choices")
    saved_active = {id(c): c.active for c in choices}
    saved_training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        ref = _reference_arch(space, gates)
        last = make_arch(space, {k: space[k][-1] if k in module_keys else ref[k] for k in space})
        # The reference arch with one value choice changed: what probes measure against the reference.
        probes = [(key, option, make_arch(space, {**ref.as_dict(), key: option}))
                  for key in value_keys for option in space[key] if option != ref[key]]
        set_arch(model, last)
        shapes_last = {i: _shapes(c) for i, c in _capture_choice_inputs(model, inputs, forward).items()}
        set_arch(model, ref)
        calls = _capture_choice_inputs(model, inputs, forward)
        for choice in module_choices:
            if id(choice) not in calls:
                raise ValueError(f"choice {choice.key!r} was not run by the forward pass; the table cannot cost it")
            if _shapes(calls[id(choice)]) != shapes_last.get(id(choice)):
                raise ValueError(f"choice {choice.key!r} receives inputs whose shape depends on other choices; "
                                 "its cost is not additive and a lookup table cannot represent it")
        cuda = any(p.is_cuda for p in model.parameters())
        flops = {k: {o: 0.0 for o in opts} for k, opts in space.items()}
        params = {k: {o: 0.0 for o in opts} for k, opts in space.items()}
        lat = {k: {o: 0.0 for o in opts} for k, opts in space.items()} if latency else None
        in_choices: set[int] = set()
        for choice in module_choices:
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
        set_arch(model, ref)
        whole = None
        if value_keys:
            whole = _Prober(model, [inputs], lambda m, c: [forward(m, i) for i in c])
            value_choices = [c for c in choices if not c.holds_modules]
            found = _probe_target(model, value_choices, inputs, forward)
            prober = _Prober(*found) if found else whole
            target = found[0] if found else model
            # A value choice changes params only inside a module that fixes itself (fix_arch); elsewhere
            # fix() keeps every weight and the difference is zero.
            pruned = {c.key for owner in _self_fixing(target) for c in choices_of(owner)}
            ref_flops = prober.flops(ref)
            ref_params = prober.params(ref) if pruned else 0.0
            for key, option, probe in probes:
                flops[key][option] = prober.flops(probe) - ref_flops
                if key in pruned:
                    params[key][option] = prober.params(probe) - ref_params
            base_params = whole.params(ref) - sum(params[k][ref[k]] for k in module_keys)
            base_flops = whole.flops(ref) - sum(flops[k][ref[k]] for k in module_keys)
        else:
            base_params = sum(p.numel() for p in model.parameters() if id(p) not in in_choices)
            base_flops = count_flops(ForwardModule(model, forward), inputs) - sum(flops[k][ref[k]] for k in module_keys)
        base = {"flops": float(base_flops), "params": float(base_params)}
        options = {"flops": flops, "params": params}
        if lat is not None:
            def seconds(arch: Arch) -> float:
                set_arch(model, arch)
                with torch.no_grad():
                    return median_seconds(lambda: forward(model, inputs), latency_repeats, cuda)

            total_lat = seconds(ref)
            for key, option, probe in probes:
                lat[key][option] = seconds(probe) - total_lat
            base["latency"] = max(0.0, total_lat - sum(lat[k][ref[k]] for k in module_keys))
            options["latency"] = lat
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else None
        table = CostTable(space, base, options, shape, gates)
        if value_keys:
            rng = random.Random(0)
            for _ in range(check_archs):
                arch = make_arch(space, {k: rng.choice(opts) for k, opts in space.items()})
                counted = (whole.flops(arch), whole.params(arch))
                if (table.cost(arch, "flops"), table.cost(arch, "params")) != counted:
                    raise ValueError(
                        f"the cost of this space is not additive over its choices: for {dict(arch)} the table gives "
                        f"{table.cost(arch, 'flops'):.0f} FLOPs / {table.cost(arch, 'params'):.0f} params, a full "
                        f"count {counted[0]:.0f} / {counted[1]:.0f}; declare gates for choices that only matter "
                        "under another choice")
    finally:
        for choice in choices:
            choice.active = saved_active[id(choice)]
        for module, flag in saved_training.items():
            module.training = flag
    return table


class ForwardModule(nn.Module):
    """``forward(model, inputs)`` as a module of its own (for counters and exporters that take a module)."""

    def __init__(self, model: nn.Module, forward: Forward):
        super().__init__()
        self.model = model
        self._fwd = forward

    def forward(self, inputs):
        return self._fwd(self.model, inputs)
