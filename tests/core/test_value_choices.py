"""Value choices: cost tables by probing (with gates), and modules that fix themselves (fix_arch)."""
import itertools

import pytest
import torch
from torch import nn

from tasknas.core import Choice, build_cost_table, count_flops, count_params, fix, make_arch, set_arch, space_of
from tasknas.core.cost import CostTable


class Stack(nn.Module):
    """Up to 3 layers (value choice ``depth``); layer i runs conv a, conv b or both (value choice ``layer{i}``,
    gated by depth for i >= 1). With ``arch`` it is built fixed: only the layers and convs the arch uses."""

    def __init__(self, gated: bool = True, arch: dict | None = None):
        super().__init__()
        self.gated = gated
        depths = (1, 2, 3) if arch is None else (arch["depth"],)
        self.depth = Choice("depth", depths)
        self.paths = nn.ModuleList()
        self.layers = nn.ModuleList()
        for i in range(max(depths)):
            gate = ("depth", tuple(d for d in (1, 2, 3) if d > i)) if gated and i else None
            options = ("a", "b", "ab") if arch is None else (arch[f"layer{i}"],)
            self.paths.append(Choice(f"layer{i}", options, gate=gate))
            wanted = "ab" if arch is None else arch[f"layer{i}"]
            self.layers.append(nn.ModuleDict({c: nn.Conv2d(4, 4, 3 if c == "a" else 1, padding=1 if c == "a" else 0)
                                              for c in wanted}))
        if arch is not None:
            for c in self.choices():
                c.activate(c.options[0])

    def choices(self):
        return [self.depth, *self.paths]

    def forward(self, x):
        for i in range(self.depth.active):
            path = self.paths[i].active
            x = sum(self.layers[i][c](x) for c in path)
        return x

    def fix_arch(self, chosen):
        own = {k: chosen[k] for k in space_of(self)}
        fixed = Stack(self.gated, own)
        state = self.state_dict()
        fixed.load_state_dict({k: state[k].clone() for k in fixed.state_dict()})
        return fixed


class Net(nn.Module):
    def __init__(self, gated=True):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.body = Stack(gated)

    def forward(self, x):
        return self.body(self.stem(x))


def all_archs(space):
    keys = list(space)
    for values in itertools.product(*(space[k] for k in keys)):
        yield make_arch(space, dict(zip(keys, values)))


def test_gated_value_choice_table_equals_a_full_count_on_every_arch():
    net = Net()
    x = torch.randn(1, 3, 8, 8)
    table = build_cost_table(net, x)
    assert table.gates == {"layer1": ("depth", (2, 3)), "layer2": ("depth", (3,))}
    for arch in all_archs(space_of(net)):
        subnet = fix(net, arch)
        assert table.flops(arch) == count_flops(subnet, x)
        assert table.params(arch) == count_params(subnet)
    flops = [table.flops(a) for a in all_archs(space_of(net))]
    assert table.range("flops") == (min(flops), max(flops))


def test_a_self_fixing_module_gives_the_same_outputs_with_only_the_used_weights():
    net = Net()
    arch = make_arch(space_of(net), {"depth": 2, "layer0": "ab", "layer1": "b", "layer2": "a"})
    set_arch(net, arch)
    subnet = fix(net, arch)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(net(x), subnet(x))
    assert sorted(subnet.state_dict()) == ["body.layers.0.a.bias", "body.layers.0.a.weight", "body.layers.0.b.bias",
                                           "body.layers.0.b.weight", "body.layers.1.b.bias", "body.layers.1.b.weight",
                                           "stem.bias", "stem.weight"]


def test_a_space_whose_cost_is_not_additive_is_refused():
    # without the gates, a deep layer's conv counts whatever the depth: the table would be wrong
    with pytest.raises(ValueError, match="not additive"):
        build_cost_table(Net(gated=False), torch.randn(1, 3, 8, 8))


def test_gates_survive_json_and_bad_gates_are_named(tmp_path):
    table = build_cost_table(Net(), torch.randn(1, 3, 8, 8))
    table.save(tmp_path / "t.json")
    again = CostTable.load(tmp_path / "t.json")
    arch = make_arch(table.space, {"depth": 1, "layer0": "a", "layer1": "ab", "layer2": "ab"})
    assert again.gates == table.gates and again.flops(arch) == table.flops(arch)
    with pytest.raises(ValueError, match="gate of 'layer1'"):
        CostTable(table.space, table.base, table.options, gates={"layer1": ("nope", (1,))})
    with pytest.raises(ValueError, match="gate must be"):
        Choice("x", (1, 2), gate=("x", (1,)))


def test_a_latency_table_of_value_choices_is_measured_and_still_checked_exact():
    net = Net()
    table = build_cost_table(net, torch.randn(1, 3, 8, 8), latency=True, latency_repeats=2)
    assert table.metrics == ("flops", "params", "latency", "macs")
    assert table.options["latency"]["depth"][3] == 0.0  # the reference arch: every gate open
    assert table.base["latency"] > 0
    arch = make_arch(space_of(net), {"depth": 3, "layer0": "a", "layer1": "b", "layer2": "ab"})
    assert table.flops(arch) == count_flops(fix(net, arch), torch.randn(1, 3, 8, 8))
