"""Differentiable cell search: mixed op, search network, genotype derivation, arch values, fixed network."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tasknas.core import load_arch, make_arch, save_arch
from tasknas.plugins.binary.bats import BatsConvOp, bats_op_set
from tasknas.plugins.binary.darts import FixedNetwork, MixedOp, SearchNetwork, Zero, darts_op_set, plan_cells
from tasknas.plugins.binary.genotype import (
    Genotype,
    arch_to_genotype,
    derive_genotype,
    genotype_space,
    genotype_to_arch,
    num_edges,
)
from tasknas.plugins.binary.trainer import arch_step, weight_step

NAMES = ("none", "max_pool_3x3", "skip_connect", "conv")


def _planted() -> tuple[torch.Tensor, torch.Tensor]:
    normal = torch.tensor([
        [0.90, 0.02, 0.03, 0.05],  # n0 <- 0: 'none' weighs most, the best real op is conv
        [0.10, 0.60, 0.20, 0.10],  # n0 <- 1: max_pool
        [0.00, 0.10, 0.10, 0.80],  # n1 <- 0: conv (0.8)
        [0.50, 0.20, 0.20, 0.10],  # n1 <- 1: strongest real op only 0.2 -> dropped
        [0.10, 0.10, 0.70, 0.10],  # n1 <- 2: skip (0.7)
    ])
    reduce = torch.tensor([
        [0.25, 0.25, 0.25, 0.25],  # a tie of real ops goes to the earlier op: max_pool
        [0.10, 0.10, 0.10, 0.70],
        [0.10, 0.30, 0.30, 0.30],  # n1 <- 0, 1, 2 all reach 0.3: the two earlier inputs win
        [0.70, 0.30, 0.00, 0.00],  # 'none' weighs most here but does not count
        [0.40, 0.30, 0.20, 0.10],
    ])
    return normal, reduce


def test_genotype_keeps_two_strongest_inputs_per_node_without_none():
    normal, reduce = _planted()
    genotype = derive_genotype(normal, reduce, NAMES, steps=2)
    assert genotype.normal == (("conv", 0), ("max_pool_3x3", 1), ("conv", 0), ("skip_connect", 2))
    assert genotype.reduce == (("max_pool_3x3", 0), ("conv", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1))


def test_genotype_derivation_checks_the_shape_of_the_weights():
    normal, reduce = _planted()
    with pytest.raises(ValueError, match=r"shape \(5, 4\); expected \(9, 4\) for 3 steps"):
        derive_genotype(normal, reduce, NAMES, steps=3)


def test_genotype_round_trips_through_a_core_arch_and_json(tmp_path):
    genotype = derive_genotype(*_planted(), NAMES, steps=2)
    arch = genotype_to_arch(genotype, NAMES)
    space = genotype_space(NAMES, 2)
    assert len(space) == 2 * 2 * 2 * 2 and space["normal.node1.edge0.input"] == (0, 1, 2)
    assert "none" not in space["reduce.node0.edge1.op"]
    assert arch["normal.node1.edge1.op"] == "skip_connect" and arch["normal.node1.edge1.input"] == 2
    save_arch(tmp_path / "g.arch.json", arch)
    assert arch_to_genotype(load_arch(tmp_path / "g.arch.json", space), 2) == genotype


def test_an_arch_with_none_or_a_later_input_is_rejected_by_name():
    space = genotype_space(NAMES, 2)
    values = genotype_to_arch(derive_genotype(*_planted(), NAMES, steps=2), NAMES).as_dict()
    with pytest.raises(ValueError, match="'normal.node0.edge0.op' has option 'none'"):
        make_arch(space, {**values, "normal.node0.edge0.op": "none"})
    with pytest.raises(ValueError, match="'reduce.node0.edge1.input' has option 2; allowed options are \\[0, 1\\]"):
        make_arch(space, {**values, "reduce.node0.edge1.input": 2})


def test_reduction_cells_sit_at_one_and_two_thirds_of_depth():
    assert [i for i, p in enumerate(plan_cells(8, 16, 4, 3)) if p.reduction] == [2, 5]
    assert [i for i, p in enumerate(plan_cells(5, 16, 4, 3)) if p.reduction] == [1, 3]
    plan = plan_cells(5, 8, 4, 3)
    assert [p.channels for p in plan] == [8, 16, 16, 32, 32]
    assert plan[2].reduction_prev and plan[2].c_prev == 4 * 16 and plan[2].c_prev_prev == 4 * 8
    with pytest.raises(ValueError, match="layers >= 3"):
        plan_cells(2, 8, 4, 3)


def test_mixed_op_is_the_weighted_sum_of_its_ops_and_skips_none():
    torch.manual_seed(0)
    op_set = darts_op_set()
    mixed = MixedOp(op_set, 4, stride=1)
    x = torch.randn(2, 4, 6, 6)
    w = torch.softmax(torch.randn(len(op_set.names)), 0)
    expected = None
    for k, op in enumerate(mixed.candidates):
        if not isinstance(op, Zero):
            term = w[k] * op(x)
            expected = term if expected is None else expected + term
    assert torch.equal(mixed(x, w), expected)
    assert isinstance(mixed.candidates[0], Zero) and op_set.names[0] == "none"


def _tiny_search(op_set=None, temperature=1.0) -> SearchNetwork:
    return SearchNetwork(op_set or bats_op_set(groups=2), 1, 3, channels=4, layers=3, steps=2, stem_multiplier=1,
                         temperature=temperature, generator=torch.Generator().manual_seed(0))


def test_search_network_op_weights_are_the_tempered_softmax_of_alpha():
    net = _tiny_search(temperature=0.5)
    assert net.alphas["normal"].shape == (num_edges(2), 8) and net.alphas["normal"].abs().max() < 0.01
    with torch.no_grad():
        net.alphas["normal"].copy_(torch.arange(40.0).view(5, 8) / 10)
    weights = net.arch_weights()["normal"]
    assert torch.allclose(weights, torch.softmax(net.alphas["normal"] / 0.5, dim=-1))
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_same_generator_gives_the_same_alpha():
    assert torch.equal(_tiny_search().alphas["reduce"], _tiny_search().alphas["reduce"])


def test_alpha_step_moves_only_alpha_and_weight_step_only_weights():
    torch.manual_seed(0)
    net = _tiny_search()
    weights = [p for _, p in net.weight_parameters()]
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=0.1)
    w_opt = torch.optim.SGD(weights, lr=0.1)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    before_w = [p.detach().clone() for p in weights]
    before_a = [p.detach().clone() for p in net.arch_parameters()]
    arch_step(net, a_opt, x, y)
    assert all(torch.equal(a, b) for a, b in zip(before_w, weights))
    assert all(not torch.equal(a, b) for a, b in zip(before_a, net.arch_parameters()))
    after_a = [p.detach().clone() for p in net.arch_parameters()]
    weight_step(net, w_opt, weights, x, y, grad_clip=5.0)
    assert all(torch.equal(a, b) for a, b in zip(after_a, net.arch_parameters()))
    assert sum(not torch.equal(a, b) for a, b in zip(before_w, weights)) > len(weights) // 2


def test_fixed_network_builds_the_genotype_ops_and_trains():
    genotype = Genotype(normal=(("group_conv_3x3", 0), ("skip_connect", 1), ("dil_group_conv_5x5", 2),
                                ("max_pool_3x3", 0)),
                        reduce=(("avg_pool_3x3", 0), ("group_conv_5x5", 1), ("skip_connect", 2),
                                ("group_conv_3x3", 0)))
    torch.manual_seed(0)
    net = FixedNetwork(bats_op_set(groups=2), genotype, 1, 3, channels=4, layers=3, stem_multiplier=1)
    normal, reduce = net.cells[0], net.cells[1]
    assert isinstance(normal.ops[0], BatsConvOp) and normal.ops[0].unit[1].kernel_size == (3, 3)
    assert isinstance(normal.ops[1], nn.Identity) and normal.inputs == [0, 1, 2, 0]
    assert normal.ops[2].unit[1].dilation == (2, 2) and normal.ops[2].unit[1].kernel_size == (5, 5)
    assert reduce.ops[0][0].stride == 2 and reduce.ops[2].__class__ is nn.Identity  # node input: stride 1
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    out = net(x)
    assert out.shape == (4, 3)
    F.cross_entropy(out, y).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_fixed_network_rejects_ops_outside_the_op_set():
    genotype = Genotype(normal=(("sep_conv_3x3", 0), ("skip_connect", 1)), reduce=(("skip_connect", 0),
                                                                                   ("skip_connect", 1)))
    with pytest.raises(ValueError, match=r"genotype op\(s\) \['sep_conv_3x3'\] are not in the op set"):
        FixedNetwork(bats_op_set(groups=2), genotype, 1, 3, channels=4, layers=3, stem_multiplier=1)


def test_darts_op_set_takes_any_conv_factory():
    from functools import partial

    from tasknas.plugins.binary.ops import BinaryConv2d

    op_set = darts_op_set(conv=partial(BinaryConv2d, mode="weights"))
    assert op_set.names == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                            "dil_conv_3x3", "dil_conv_5x5")
    op = op_set.ops["sep_conv_3x3"](4, 2, False)
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(isinstance(c, BinaryConv2d) and c.mode == "weights" for c in convs)
    assert op(torch.randn(1, 4, 8, 8)).shape == (1, 4, 4, 4)
