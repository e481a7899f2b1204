"""The binary cell spaces listed by ``tasknas spaces``: they build, and their sizes are the genotype counts."""
import importlib
import math

from tasknas.catalog import PLUGIN_SPACES
from tasknas.core import Space, sample
from tasknas.plugins.binary.bats import BATS_OPS
from tasknas.plugins.binary.darts import darts_op_set
from tasknas.plugins.binary.genotype import arch_to_genotype, genotype_to_arch
from tasknas.plugins.binary.spaces import SPACES, binary_cell_space


def _cell_count(ops: int, steps: int) -> int:
    """Genotypes of one cell: node i picks two (op, input) pairs, ops x (i + 2) inputs each."""
    return math.prod((ops * (i + 2)) ** 2 for i in range(steps))


def test_the_binary_plugin_lists_a_bats_and_a_darts_cell_space():
    module = importlib.import_module(PLUGIN_SPACES["binary"])
    assert module.SPACES is SPACES and len(SPACES) == 2
    bats, darts = (entry.build() for entry in SPACES)
    assert isinstance(bats, Space) and isinstance(darts, Space)
    assert "bats" in SPACES[0].plugs_into and "bnas|cpnas" in SPACES[1].plugs_into
    # 2 cell types x 4 nodes x 2 edges x (op, input) keys; 7 ops (no 'none') in both sets
    assert len(bats) == len(darts) == 32
    assert bats["normal.node0.edge0.op"] == BATS_OPS[1:] and bats["reduce.node3.edge1.input"] == (0, 1, 2, 3, 4)
    assert darts["reduce.node2.edge0.op"] == darts_op_set().names[1:]
    assert bats.size() == darts.size() == _cell_count(7, 4) ** 2 == 7 ** 16 * (2 * 3 * 4 * 5) ** 4


def test_a_sampled_arch_is_a_genotype_and_back():
    import random

    space = binary_cell_space("darts", steps=2)
    assert space.size() == _cell_count(7, 2) ** 2
    arch = sample(space, random.Random(0))
    assert genotype_to_arch(arch_to_genotype(arch, 2), darts_op_set().names) == arch
