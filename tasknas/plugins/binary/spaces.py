"""The binary plugin's spaces for ``tasknas spaces``: the genotype spaces of its cell searches.

A genotype (what ``tasknas binary search`` writes as ``genotype.arch.json`` and ``tasknas binary train --arch``
reads) is a core arch: per cell type (normal, reduction), per intermediate node, two edges, each an ``op``
(the op set without ``none``) and an ``input`` (one of the node's earlier nodes). With ``n`` nodes and ``k``
ops a cell has ``prod_i (k * (i + 2))^2`` values (ordered edges, an input may repeat), the pair of cells its
square. BATS searches the BATS op set (grouped binary convs); BNAS and CP-NAS the DARTS op set with binary
convs. Listed at the default ``model.steps`` (4 nodes).
"""
from __future__ import annotations

from tasknas.catalog import SpaceEntry
from tasknas.core import Space

from .config import ModelConfig
from .networks import arch_space


def binary_cell_space(op_set: str, steps: int = ModelConfig.steps) -> Space:
    """The genotype space (normal + reduction cell) of ``op_set`` (``bats`` or ``darts``) with ``steps`` nodes."""
    return arch_space(ModelConfig(op_set=op_set, steps=steps))


SPACES = [
    SpaceEntry("bats cells (normal+reduce)", "tasknas binary search --algorithm bats (BATS grouped binary convs)",
               lambda: binary_cell_space("bats")),
    SpaceEntry("bnas/cpnas cells (normal+reduce)", "tasknas binary search --algorithm bnas|cpnas (DARTS ops, "
               "binary convs)", lambda: binary_cell_space("darts")),
]
