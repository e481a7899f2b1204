"""Genotypes of the DARTS-family cell search and the single paths of its search network, as values of the core.

A :class:`Genotype` keeps, per cell type and intermediate node, two ``(op, input)`` pairs;
:func:`derive_genotype` takes it from the search network's op weights (per node the two inputs whose strongest
non-``none`` op weighs most). Genotypes and single paths (one op per edge) are also arch values of the core
(:class:`tasknas.core.Arch`): :func:`genotype_space` (keys ``normal.node0.edge0.op`` / ``.input``) and
:func:`path_space` (keys ``normal.edge0``), saved as flat JSON.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from tasknas.core import Arch, Space, make_arch

CELL_TYPES = ("normal", "reduce")


def num_edges(steps: int) -> int:
    """Edges of a cell with ``steps`` intermediate nodes: node i has i + 2 inputs."""
    return sum(2 + i for i in range(steps))


def path_space(names: Sequence[str], steps: int) -> Space:
    """The core space of single paths: one op per edge and cell type (keys ``normal.edge0`` ...)."""
    return Space({f"{kind}.edge{e}": tuple(names) for kind in CELL_TYPES for e in range(num_edges(steps))})


def path_to_arch(path: Mapping[str, Sequence[int]], names: Sequence[str], steps: int) -> Arch:
    """A single path (op indices per edge) as a validated arch of :func:`path_space`."""
    return make_arch(path_space(names, steps), {f"{kind}.edge{e}": names[k] for kind in CELL_TYPES
                                                for e, k in enumerate(path[kind])})


def arch_to_path(arch: Arch, names: Sequence[str], steps: int) -> dict[str, list[int]]:
    """Op indices per edge and cell type of an arch of :func:`path_space`."""
    values = arch.as_dict()
    return {kind: [list(names).index(values[f"{kind}.edge{e}"]) for e in range(num_edges(steps))]
            for kind in CELL_TYPES}


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
