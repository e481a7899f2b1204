"""Differentiable cell search (the DARTS family): mixed ops, cells, the search network, genotypes.

After Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search" (ICLR 2019). A network is a
stem, ``layers`` cells and a classifier; cells at depth ``layers // 3`` and ``2 * layers // 3`` are
*reduction* cells (stride 2, channels doubled), the others *normal* cells. A cell has two input nodes
(the outputs of the two previous cells, adapted by 1x1 preprocessing), ``steps`` intermediate nodes and
outputs the concatenation of the intermediate nodes. In the search network every edge ``j -> i``
(``j < i``) is a :class:`MixedOp`: the sum of all candidate ops weighted by ``softmax(alpha / T)``, with
one row of architecture parameters alpha per edge, shared by all cells of a type. The derived genotype
keeps, per node, the two inputs whose strongest non-``none`` op weighs most, each with that op.

What the ops are is pluggable: an :class:`OpSet` maps op names to factories; :func:`darts_op_set`
gives the DARTS 8-op space over any conv factory (``nn.Conv2d`` or a binary conv), and
:mod:`tasknas.plugins.binary.bats` the binary-friendly BATS set. A genotype is also a value of the
core (:class:`tasknas.core.Arch`, keys ``normal.node0.edge0.op`` / ``.input``), saved as flat JSON.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tasknas.core import Arch, Space, make_arch

OpFactory = Callable[[int, int, bool], nn.Module]  # (channels, stride, affine) -> module
AdapterFactory = Callable[[int, int, bool], nn.Module]  # (in_channels, out_channels, affine) -> module
CELL_TYPES = ("normal", "reduce")


@dataclass(frozen=True)
class OpSet:
    """What cells are made of: candidate ops by name, and the 1x1 adapters in front of each cell.

    ``preprocess`` maps the previous cell's output to the cell's width at the same resolution;
    ``reduce_preprocess`` also halves the resolution (the cell two back when the previous one reduced).
    An op named ``"none"`` (if any) is excluded from derived genotypes.
    """

    ops: Mapping[str, OpFactory]
    preprocess: AdapterFactory
    reduce_preprocess: AdapterFactory

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.ops)


class Zero(nn.Module):
    """The ``none`` op: zeros (of the strided shape). A mixed op skips it: its weighted term is zero."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool,
                 conv: Callable[..., nn.Module] = nn.Conv2d):
        super().__init__(nn.ReLU(), conv(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU -> k x k depthwise (dilated) conv -> 1x1 conv -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool,
                 conv: Callable[..., nn.Module] = nn.Conv2d):
        super().__init__(nn.ReLU(), conv(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                                         groups=c_in, bias=False),
                         conv(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=affine))


class SepConv(nn.Sequential):
    """Two DilConv units without dilation, the first one strided."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool,
                 conv: Callable[..., nn.Module] = nn.Conv2d):
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine, conv),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, affine, conv))


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs on pixel grids offset by one, concatenated, BN: halves the resolution."""

    def __init__(self, c_in: int, c_out: int, affine: bool, conv: Callable[..., nn.Module] = nn.Conv2d):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.conv1 = conv(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv2 = conv(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv1(x), self.conv2(shifted)], dim=1))


def darts_op_set(conv: Callable[..., nn.Module] = nn.Conv2d) -> OpSet:
    """The DARTS 8-op space; ``conv(c_in, c_out, k, stride=, padding=, dilation=, groups=, bias=)`` builds
    every convolution (e.g. ``functools.partial(BinaryConv2d, mode="weights")`` for an XNOR space)."""

    def pool(kind: type[nn.Module]) -> OpFactory:
        def build(c: int, stride: int, affine: bool) -> nn.Module:
            layer = kind(3, stride=stride, padding=1, **({"count_include_pad": False} if kind is nn.AvgPool2d else {}))
            return nn.Sequential(layer, nn.BatchNorm2d(c, affine=affine))
        return build

    ops: dict[str, OpFactory] = {
        "none": lambda c, stride, affine: Zero(stride),
        "max_pool_3x3": pool(nn.MaxPool2d),
        "avg_pool_3x3": pool(nn.AvgPool2d),
        "skip_connect": lambda c, stride, affine: (nn.Identity() if stride == 1
                                                   else FactorizedReduce(c, c, affine, conv)),
        "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine, conv),
        "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine, conv),
        "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine, conv),
        "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine, conv),
    }
    return OpSet(ops, preprocess=lambda c_in, c_out, affine: ReLUConvBN(c_in, c_out, 1, 1, 0, affine, conv),
                 reduce_preprocess=lambda c_in, c_out, affine: FactorizedReduce(c_in, c_out, affine, conv))


class MixedOp(nn.Module):
    """All candidate ops of one edge; ``forward(x, weights)`` returns ``sum_k weights[k] * op_k(x)``."""

    def __init__(self, op_set: OpSet, channels: int, stride: int):
        super().__init__()
        self.names = op_set.names
        self.candidates = nn.ModuleList(op_set.ops[name](channels, stride, False) for name in self.names)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for w, op in zip(weights, self.candidates):
            if isinstance(op, Zero):
                continue  # its term w * 0 is zero and contributes no gradient either
            term = w * op(x)
            out = term if out is None else out + term
        if out is None:
            raise ValueError("a mixed op needs at least one op other than 'none'")
        return out


def num_edges(steps: int) -> int:
    """Edges of a cell with ``steps`` intermediate nodes: node i has i + 2 inputs."""
    return sum(2 + i for i in range(steps))


@dataclass(frozen=True)
class CellPlan:
    c_prev_prev: int
    c_prev: int
    channels: int
    reduction: bool
    reduction_prev: bool


def plan_cells(layers: int, channels: int, steps: int, stem_multiplier: int) -> list[CellPlan]:
    """The widths and cell types of a network: reductions at ``layers // 3`` and ``2 * layers // 3``."""
    if layers < 3:
        raise ValueError(f"a cell network needs layers >= 3 (reduction cells at layers//3 and 2*layers//3), "
                         f"got layers={layers}")
    for name, value in (("channels", channels), ("steps", steps), ("stem_multiplier", stem_multiplier)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    c_pp, c_p, c = stem_multiplier * channels, stem_multiplier * channels, channels
    plan, reduction_prev = [], False
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c *= 2
        plan.append(CellPlan(c_pp, c_p, c, reduction, reduction_prev))
        reduction_prev = reduction
        c_pp, c_p = c_p, steps * c
    return plan


def _preprocess(op_set: OpSet, plan: CellPlan, affine: bool) -> tuple[nn.Module, nn.Module]:
    pre0 = (op_set.reduce_preprocess if plan.reduction_prev else op_set.preprocess)(plan.c_prev_prev,
                                                                                       plan.channels, affine)
    return pre0, op_set.preprocess(plan.c_prev, plan.channels, affine)


class SearchCell(nn.Module):
    def __init__(self, op_set: OpSet, steps: int, plan: CellPlan):
        super().__init__()
        self.steps = steps
        self.reduction = plan.reduction
        self.pre0, self.pre1 = _preprocess(op_set, plan, affine=False)
        self.edges = nn.ModuleList(MixedOp(op_set, plan.channels, 2 if plan.reduction and j < 2 else 1)
                                   for i in range(steps) for j in range(2 + i))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.steps):
            node = None
            for j, h in enumerate(states):
                term = self.edges[offset + j](h, weights[offset + j])
                node = term if node is None else node + term
            offset += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


class _CellNetwork(nn.Module):
    """Stem (real 3x3 conv + BN, stride 1 as DARTS, or 2 to cut the cost on CPU), cells, global average
    pooling, real linear classifier."""

    def _build_ends(self, in_channels: int, channels: int, stem_multiplier: int, c_last: int, num_classes: int,
                    stem_stride: int):
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_multiplier * channels, 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(stem_multiplier * channels))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, num_classes)


class SearchNetwork(_CellNetwork):
    """The over-parameterised network of a differentiable search, with alpha for normal and reduce cells.

    ``temperature`` T divides alpha before the softmax (BATS); DARTS is T = 1. Alpha is initialised to
    ``1e-3 * N(0, 1)`` from ``generator`` (an explicit RNG: the same seed gives the same alpha).
    """

    def __init__(self, op_set: OpSet, in_channels: int, num_classes: int, channels: int = 16, layers: int = 8,
                 steps: int = 4, stem_multiplier: int = 3, temperature: float = 1.0,
                 generator: torch.Generator | None = None, stem_stride: int = 1):
        super().__init__()
        self.op_names = op_set.names
        self.steps = steps
        self.temperature = float(temperature)
        plan = plan_cells(layers, channels, steps, stem_multiplier)
        self._build_ends(in_channels, channels, stem_multiplier, steps * plan[-1].channels, num_classes, stem_stride)
        self.cells = nn.ModuleList(SearchCell(op_set, steps, p) for p in plan)
        shape = (num_edges(steps), len(self.op_names))
        self.alphas = nn.ParameterDict({kind: nn.Parameter(1e-3 * torch.randn(shape, generator=generator))
                                        for kind in CELL_TYPES})

    def arch_weights(self) -> dict[str, torch.Tensor]:
        """``softmax(alpha / T)`` per cell type: one row of op weights per edge."""
        if self.temperature <= 0:
            raise ValueError(f"softmax temperature must be > 0, got {self.temperature}")
        return {kind: F.softmax(alpha / self.temperature, dim=-1) for kind, alpha in self.alphas.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.arch_weights()
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
        return self.classifier(self.pool(s1).flatten(1))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas[kind] for kind in CELL_TYPES]

    def weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Named parameters other than alpha."""
        return [(name, p) for name, p in self.named_parameters() if not name.startswith("alphas.")]

    def genotype(self) -> Genotype:
        with torch.no_grad():
            weights = self.arch_weights()
        return derive_genotype(weights["normal"], weights["reduce"], self.op_names, self.steps)


@dataclass(frozen=True)
class Genotype:
    """A discrete cell pair: for each cell type, two ``(op, input)`` pairs per intermediate node.

    Inputs are node indices: 0 and 1 are the two cell inputs, ``k + 2`` the k-th intermediate node.
    """

    normal: tuple[tuple[str, int], ...]
    reduce: tuple[tuple[str, int], ...]

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    def cell(self, kind: str) -> tuple[tuple[str, int], ...]:
        return self.normal if kind == "normal" else self.reduce

    def __str__(self) -> str:
        def fmt(cell):
            return " | ".join(f"n{n + 2}: {a}<-{i} + {b}<-{j}"
                              for n, ((a, i), (b, j)) in enumerate(zip(cell[0::2], cell[1::2])))
        return f"normal [{fmt(self.normal)}]  reduce [{fmt(self.reduce)}]"


def _derive_cell(weights: torch.Tensor, names: Sequence[str], steps: int) -> tuple[tuple[str, int], ...]:
    usable = [k for k, name in enumerate(names) if name != "none"]
    if not usable:
        raise ValueError(f"no op other than 'none' to derive a genotype from: {list(names)}")
    if tuple(weights.shape) != (num_edges(steps), len(names)):
        raise ValueError(f"op weights have shape {tuple(weights.shape)}; expected "
                         f"({num_edges(steps)}, {len(names)}) for {steps} steps and {len(names)} ops")
    rows = weights.tolist()
    cell: list[tuple[str, int]] = []
    start = 0
    for i in range(steps):
        best = []  # per input j: (strength, op index); ties go to the earlier op
        for j in range(2 + i):
            row = rows[start + j]
            k = max(usable, key=lambda k: (row[k], -k))
            best.append((row[k], k))
        chosen = sorted(range(2 + i), key=lambda j: (-best[j][0], j))[:2]  # ties go to the earlier input
        cell.extend((names[best[j][1]], j) for j in sorted(chosen))
        start += 2 + i
    return tuple(cell)


def derive_genotype(normal: torch.Tensor, reduce: torch.Tensor, names: Sequence[str], steps: int) -> Genotype:
    """Per node, the two inputs whose strongest non-``none`` op weighs most, each with that op.

    ``normal`` / ``reduce`` are op weights (``softmax(alpha / T)``), one row per edge in the order
    node 0's inputs 0, 1, node 1's inputs 0, 1, 2, ...
    """
    return Genotype(_derive_cell(normal, names, steps), _derive_cell(reduce, names, steps))


def genotype_space(names: Sequence[str], steps: int) -> Space:
    """The core space of genotypes: per cell type, node and edge, an ``op`` and an ``input`` key."""
    ops = tuple(name for name in names if name != "none")
    if not ops:
        raise ValueError(f"no op other than 'none' in {list(names)}")
    entries: dict[str, tuple] = {}
    for kind in CELL_TYPES:
        for i in range(steps):
            for e in range(2):
                entries[f"{kind}.node{i}.edge{e}.op"] = ops
                entries[f"{kind}.node{i}.edge{e}.input"] = tuple(range(i + 2))
    return Space(entries)


def genotype_to_arch(genotype: Genotype, names: Sequence[str]) -> Arch:
    """The genotype as a validated arch of :func:`genotype_space`."""
    pairs = {}
    for kind in CELL_TYPES:
        for n, (op, source) in enumerate(genotype.cell(kind)):
            pairs[f"{kind}.node{n // 2}.edge{n % 2}.op"] = op
            pairs[f"{kind}.node{n // 2}.edge{n % 2}.input"] = source
    return make_arch(genotype_space(names, genotype.steps), pairs)


def arch_to_genotype(arch: Arch, steps: int) -> Genotype:
    """The genotype of an arch of :func:`genotype_space` with ``steps`` nodes per cell."""
    values = arch.as_dict()
    cells = {kind: tuple((values[f"{kind}.node{i}.edge{e}.op"], values[f"{kind}.node{i}.edge{e}.input"])
                         for i in range(steps) for e in range(2)) for kind in CELL_TYPES}
    return Genotype(cells["normal"], cells["reduce"])


class FixedCell(nn.Module):
    """A discrete cell: each intermediate node sums two ops, each on one chosen earlier node."""

    def __init__(self, op_set: OpSet, cell: Sequence[tuple[str, int]], plan: CellPlan):
        super().__init__()
        self.reduction = plan.reduction
        self.pre0, self.pre1 = _preprocess(op_set, plan, affine=True)
        unknown = sorted({op for op, _ in cell if op not in op_set.ops})
        if unknown:
            raise ValueError(f"genotype op(s) {unknown} are not in the op set {list(op_set.names)}")
        self.inputs = [source for _, source in cell]
        self.ops = nn.ModuleList(op_set.ops[op](plan.channels, 2 if plan.reduction and source < 2 else 1, True)
                                 for op, source in cell)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(len(self.ops) // 2):
            a, b = 2 * i, 2 * i + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], dim=1)


class FixedNetwork(_CellNetwork):
    """The discrete network of a genotype, for retraining (same macro layout as :class:`SearchNetwork`)."""

    def __init__(self, op_set: OpSet, genotype: Genotype, in_channels: int, num_classes: int, channels: int = 36,
                 layers: int = 20, stem_multiplier: int = 3, stem_stride: int = 1):
        super().__init__()
        self.genotype = genotype
        steps = genotype.steps
        plan = plan_cells(layers, channels, steps, stem_multiplier)
        self._build_ends(in_channels, channels, stem_multiplier, steps * plan[-1].channels, num_classes, stem_stride)
        self.cells = nn.ModuleList(FixedCell(op_set, genotype.cell("reduce" if p.reduction else "normal"), p)
                                   for p in plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.pool(s1).flatten(1))
