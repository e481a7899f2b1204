"""Differentiable cell search (the DARTS family): mixed ops, cells, the search network, fixed networks.

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
core (:mod:`tasknas.plugins.binary.genotype`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .genotype import CELL_TYPES, Genotype, derive_genotype, num_edges
from .ops import channel_shuffle

OpFactory = Callable[[int, int, bool], nn.Module]  # (channels, stride, affine) -> module
AdapterFactory = Callable[[int, int, bool], nn.Module]  # (in_channels, out_channels, affine) -> module


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


def _act(relu: bool) -> nn.Module:
    return nn.ReLU() if relu else nn.Identity()


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool,
                 conv: Callable[..., nn.Module] = nn.Conv2d, relu: bool = True):
        super().__init__(_act(relu), conv(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU -> k x k depthwise (dilated) conv -> 1x1 conv -> BN (``relu=False``: no ReLU, for binary inputs)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool,
                 conv: Callable[..., nn.Module] = nn.Conv2d, relu: bool = True):
        super().__init__(_act(relu), conv(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                                          groups=c_in, bias=False),
                         conv(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=affine))


class SepConv(nn.Sequential):
    """Two DilConv units without dilation, the first one strided."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool,
                 conv: Callable[..., nn.Module] = nn.Conv2d, relu: bool = True):
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine, conv, relu),
                         DilConv(c_in, c_out, kernel, 1, padding, 1, affine, conv, relu))


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs on pixel grids offset by one, concatenated, BN: halves the resolution."""

    def __init__(self, c_in: int, c_out: int, affine: bool, conv: Callable[..., nn.Module] = nn.Conv2d,
                 relu: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.act = _act(relu)
        self.conv1 = conv(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv2 = conv(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv1(x), self.conv2(shifted)], dim=1))


def darts_op_set(conv: Callable[..., nn.Module] = nn.Conv2d, relu: bool = True,
                 preprocess_conv: Callable[..., nn.Module] | None = None) -> OpSet:
    """The DARTS 8-op space; ``conv(c_in, c_out, k, stride=, padding=, dilation=, groups=, bias=)`` builds
    every convolution of the ops (e.g. ``functools.partial(BinaryConv2d, mode="weights")`` for an XNOR
    space), ``preprocess_conv`` (default: ``conv``) the 1x1 convs in front of each cell. ``relu=False``
    drops the ReLU in front of the convs (binary activations after a ReLU would all be +1)."""
    pre = conv if preprocess_conv is None else preprocess_conv

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
                                                   else FactorizedReduce(c, c, affine, conv, relu)),
        "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine, conv, relu),
        "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine, conv, relu),
        "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine, conv, relu),
        "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine, conv, relu),
    }
    return OpSet(ops, preprocess=lambda c_in, c_out, affine: ReLUConvBN(c_in, c_out, 1, 1, 0, affine, pre, relu),
                 reduce_preprocess=lambda c_in, c_out, affine: FactorizedReduce(c_in, c_out, affine, pre, relu))


class MixedOp(nn.Module):
    """All candidate ops of one edge; ``forward(x, weights)`` returns ``sum_k weights[k] * op_k(x)``.

    With ``partial = K > 1`` (PC-DARTS, Xu et al., ICLR 2020) the ops see only the first ``1/K`` of the
    channels; the other channels bypass them (a 2x2 max-pool at stride 2), the two parts are concatenated
    and channel-shuffled with ``K`` groups. ``active`` (a bool per op) skips ops: removed ones, or all but
    one on a single path; an edge whose only active op is ``none`` outputs zeros.
    """

    def __init__(self, op_set: OpSet, channels: int, stride: int, partial: int = 1):
        super().__init__()
        if partial < 1 or channels % partial:
            raise ValueError(f"partial channels K={partial} must be >= 1 and divide the {channels} channels of "
                             "the edge (set search.partial_channels, or model.search_channels to a multiple of it)")
        self.names = op_set.names
        self.partial = partial
        self.stride = stride
        self.candidates = nn.ModuleList(op_set.ops[name](channels // partial, stride, False) for name in self.names)
        self.bypass = None if partial == 1 else (nn.Identity() if stride == 1 else nn.MaxPool2d(2, 2, ceil_mode=True))

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Sequence[bool] | None = None) -> torch.Tensor:
        if self.partial > 1:
            width = x.shape[1] // self.partial
            x, rest = x[:, :width], x[:, width:]
        out = None
        for k, (w, op) in enumerate(zip(weights, self.candidates)):
            if isinstance(op, Zero) or (active is not None and not active[k]):
                continue  # the term w * 0 is zero and contributes no gradient either
            term = w * op(x)
            out = term if out is None else out + term
        if out is None:
            if active is None:
                raise ValueError("a mixed op needs at least one op other than 'none'")
            out = x[:, :, ::self.stride, ::self.stride].mul(0.0)
        if self.partial > 1:
            out = channel_shuffle(torch.cat([out, self.bypass(rest)], dim=1), self.partial)
        return out


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
    def __init__(self, op_set: OpSet, steps: int, plan: CellPlan, partial: int = 1):
        super().__init__()
        self.steps = steps
        self.reduction = plan.reduction
        self.pre0, self.pre1 = _preprocess(op_set, plan, affine=False)
        self.edges = nn.ModuleList(MixedOp(op_set, plan.channels, 2 if plan.reduction and j < 2 else 1, partial)
                                   for i in range(steps) for j in range(2 + i))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                active: Sequence[Sequence[bool]] | None = None, edge_weights: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``weights``: op weights per edge; ``active``: the ops to run per edge (None: all);
        ``edge_weights``: one weight per edge multiplying its output in the node's sum (None: plain sum)."""
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.steps):
            node = None
            for j, h in enumerate(states):
                e = offset + j
                term = self.edges[e](h, weights[e], None if active is None else active[e])
                if edge_weights is not None:
                    term = edge_weights[e] * term
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
    ``1e-3 * N(0, 1)`` from ``generator`` (an explicit RNG: the same seed gives the same alpha), then, with
    ``edge_norm`` (PC-DARTS edge normalization), beta: one weight per edge, softmax-normalised over the
    inputs of each node, that scales the edge's output in the node's sum and its strength in the genotype.
    ``partial`` is the PC-DARTS channel fraction K. The buffers ``mask_normal`` / ``mask_reduce`` (edges x
    ops, bool) hold the ops that remain on every edge: a removed op gets weight 0, never runs and is never
    sampled; they are part of the state dict, so a checkpoint carries them.
    """

    def __init__(self, op_set: OpSet, in_channels: int, num_classes: int, channels: int = 16, layers: int = 8,
                 steps: int = 4, stem_multiplier: int = 3, temperature: float = 1.0,
                 generator: torch.Generator | None = None, stem_stride: int = 1, partial: int = 1,
                 edge_norm: bool = False):
        super().__init__()
        self.op_names = op_set.names
        self.steps = steps
        self.temperature = float(temperature)
        self.edge_norm = edge_norm
        plan = plan_cells(layers, channels, steps, stem_multiplier)
        self._build_ends(in_channels, channels, stem_multiplier, steps * plan[-1].channels, num_classes, stem_stride)
        self.cells = nn.ModuleList(SearchCell(op_set, steps, p, partial) for p in plan)
        shape = (num_edges(steps), len(self.op_names))
        self.alphas = nn.ParameterDict({kind: nn.Parameter(1e-3 * torch.randn(shape, generator=generator))
                                        for kind in CELL_TYPES})
        if edge_norm:
            self.betas = nn.ParameterDict({kind: nn.Parameter(1e-3 * torch.randn(shape[0], generator=generator))
                                           for kind in CELL_TYPES})
        for kind in CELL_TYPES:
            self.register_buffer(f"mask_{kind}", torch.ones(shape, dtype=torch.bool))

    def op_mask(self, kind: str) -> torch.Tensor:
        """The remaining ops of every edge of cell type ``kind`` (edges x ops, bool; change it in place)."""
        return getattr(self, f"mask_{kind}")

    def remaining(self, kind: str, edge: int) -> list[int]:
        """Indices of the ops that remain on ``edge`` of cell type ``kind``, in op-set order."""
        return [k for k, keep in enumerate(self.op_mask(kind)[edge].tolist()) if keep]

    def arch_weights(self) -> dict[str, torch.Tensor]:
        """``softmax(alpha / T)`` per cell type over the remaining ops: one row of op weights per edge."""
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"softmax temperature must be a finite number > 0, got {self.temperature}")
        out = {}
        for kind, alpha in self.alphas.items():
            logits = alpha / self.temperature
            mask = self.op_mask(kind)
            if not bool(mask.all()):
                logits = logits.masked_fill(~mask, float("-inf"))
            out[kind] = F.softmax(logits, dim=-1)
        return out

    def edge_weights(self) -> dict[str, torch.Tensor] | None:
        """Per cell type, beta softmax-normalised over the inputs of each node (None without edge_norm)."""
        if not self.edge_norm:
            return None
        out = {}
        for kind, beta in self.betas.items():
            parts, start = [], 0
            for i in range(self.steps):
                parts.append(F.softmax(beta[start:start + 2 + i], dim=-1))
                start += 2 + i
            out[kind] = torch.cat(parts)
        return out

    def path_weights(self, path: Mapping[str, Sequence[int]]) -> tuple[dict, dict]:
        """One-hot op weights and active flags of a single path (one op index per edge and cell type)."""
        weights, active = {}, {}
        for kind in CELL_TYPES:
            ops = list(path[kind])
            mask = self.op_mask(kind)
            if len(ops) != mask.shape[0]:
                raise ValueError(f"a path needs one op per {kind} edge ({mask.shape[0]}), got {len(ops)}")
            for e, k in enumerate(ops):
                if not (0 <= k < mask.shape[1] and bool(mask[e, k])):
                    raise ValueError(f"path op {k} on {kind} edge {e} is not among its remaining ops "
                                     f"{self.remaining(kind, e)}")
            w = torch.zeros(mask.shape)
            w[torch.arange(len(ops)), torch.tensor(ops, dtype=torch.long)] = 1.0
            weights[kind] = w
            active[kind] = [[k == chosen for k in range(mask.shape[1])] for chosen in ops]
        return weights, active

    def forward(self, x: torch.Tensor, path: Mapping[str, Sequence[int]] | None = None) -> torch.Tensor:
        """The mixed network, or with ``path`` the single-path network: one op per edge, plain node sums."""
        return self.classifier(self.features(x, path))

    def features(self, x: torch.Tensor, path: Mapping[str, Sequence[int]] | None = None) -> torch.Tensor:
        """The pooled features in front of the classifier (see :meth:`forward`)."""
        if path is None:
            weights, edges = self.arch_weights(), self.edge_weights()
            masks = {kind: self.op_mask(kind) for kind in CELL_TYPES}
            active = {kind: None if bool(m.all()) else m.tolist() for kind, m in masks.items()}
        else:
            (weights, active), edges = self.path_weights(path), None
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], active[kind], None if edges is None else edges[kind])
        return self.pool(s1).flatten(1)

    def path_modules(self, path: Mapping[str, Sequence[int]]) -> list[nn.Module]:
        """The modules a single path runs in the cells: each cell's preprocessing and its edges' chosen ops."""
        out: list[nn.Module] = []
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            out += [cell.pre0, cell.pre1] + [edge.candidates[k] for edge, k in zip(cell.edges, path[kind])]
        return out

    def arch_parameters(self) -> list[nn.Parameter]:
        """Alpha (normal, reduce), then beta with edge normalization."""
        extra = [self.betas[kind] for kind in CELL_TYPES] if self.edge_norm else []
        return [self.alphas[kind] for kind in CELL_TYPES] + extra

    def weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Named parameters other than alpha and beta."""
        return [(name, p) for name, p in self.named_parameters() if not name.startswith(("alphas.", "betas."))]

    def edge_scores(self) -> dict[str, torch.Tensor]:
        """What the genotype is derived from: op weights, times the edge weight with edge normalization."""
        with torch.no_grad():
            weights, edges = self.arch_weights(), self.edge_weights()
        if edges is None:
            return weights
        return {kind: weights[kind] * edges[kind].unsqueeze(1) for kind in CELL_TYPES}

    def genotype(self) -> Genotype:
        scores = self.edge_scores()
        return derive_genotype(scores["normal"], scores["reduce"], self.op_names, self.steps)


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
