import random

import pytest
import torch

from tasknas.core import build_cost_table, count_flops, count_params, fix, sample, space_of
from tasknas.core.cost import CostTable
from tests.core.nets import TwoPath, tiny_shufflenet


class Features(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_features(x)


def test_table_sum_equals_flop_counter_and_params_of_the_fixed_subnet_for_random_archs():
    net = tiny_shufflenet()
    x = torch.randn(2, 3, 32, 32)
    table = build_cost_table(net, x)
    rng = random.Random(0)
    for _ in range(6):
        arch = sample(space_of(net), rng)
        subnet = fix(net, arch)
        assert table.flops(arch) == count_flops(subnet, x)
        assert table.macs(arch) == count_flops(subnet, x) / 2
        assert table.params(arch) == count_params(subnet)


def test_table_with_custom_forward_counts_only_that_forward():
    net = tiny_shufflenet()
    x = torch.randn(1, 3, 32, 32)
    table = build_cost_table(net, x, forward=lambda m, inp: m.forward_features(inp))
    arch = sample(space_of(net), random.Random(1))
    assert table.flops(arch) == count_flops(Features(fix(net, arch)), x)


def test_range_is_the_exact_min_and_max_over_the_space():
    net = TwoPath()
    x = torch.randn(1, 3, 8, 8)
    table = build_cost_table(net, x)
    costs = [table.flops(a) for a in [(("body", b), ("head", h)) for b in ("c3", "c5") for h in ("a", "b")]]
    assert table.range("flops") == (min(costs), max(costs))


def test_build_restores_train_mode_and_leaves_bn_statistics_untouched():
    net = tiny_shufflenet().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    build_cost_table(net, torch.randn(2, 3, 32, 32))
    assert net.training and all(m.training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_table_json_round_trip(tmp_path):
    net = tiny_shufflenet()
    table = build_cost_table(net, torch.randn(1, 3, 32, 32))
    table.save(tmp_path / "t.json")
    again = CostTable.load(tmp_path / "t.json")
    arch = sample(space_of(net), random.Random(2))
    assert again.flops(arch) == table.flops(arch) and again.params(arch) == table.params(arch)


def test_constraint_checks_range_and_rejects_ranges_no_arch_can_meet():
    net = tiny_shufflenet()
    table = build_cost_table(net, torch.randn(1, 3, 32, 32))
    lo, hi = table.range("macs")
    arch = sample(space_of(net), random.Random(0))
    assert table.constraint("macs", lo, hi)(arch)
    assert not table.constraint("macs", hi=lo - 1)(arch)
    with pytest.raises(ValueError, match=r"macs in \[.*\] cannot be met: macs of this space spans"):
        table.constraint("macs", lo=hi + 1).check_feasible()
    with pytest.raises(ValueError, match="cost metric 'latency' is not in this table"):
        table.constraint("latency", hi=1.0)


def test_measured_latency_table_is_positive_per_option():
    net = TwoPath()
    table = build_cost_table(net, torch.randn(1, 3, 16, 16), latency=True, latency_repeats=3)
    assert all(v > 0 for per in table.options["latency"].values() for v in per.values())
    assert table.cost((("body", "c3"), ("head", "a")), "latency") > 0


def test_input_dependent_choice_cost_is_rejected():
    class Resizing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            from tasknas.core import Choice
            self.first = Choice("first", {"same": torch.nn.Identity(), "down": torch.nn.MaxPool2d(2)})
            self.second = Choice("second", {"a": torch.nn.Conv2d(3, 3, 3), "b": torch.nn.Conv2d(3, 3, 1)})

        def forward(self, x):
            return self.second(self.first(x))

    with pytest.raises(ValueError, match="choice 'second' receives inputs whose shape depends on other choices"):
        build_cost_table(Resizing(), torch.randn(1, 3, 8, 8))
