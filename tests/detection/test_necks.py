"""The searchable necks as modules: the published archs, every sampled arch, fixed subnets, cost tables."""
import random

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.necks import NASFPN

from tasknas.core import (
    build_cost_table,
    count_flops,
    count_params,
    fix,
    is_fixed,
    make_arch,
    sample,
    set_arch,
    space_of,
)
from tasknas.plugins.detection import SearchableBiFPN, SearchableNASFPN, bifpn_d0_arch, nasfpn_published_arch
from tasknas.plugins.detection.bifpn import EPS, maxpool_same

BN = dict(type="BN", requires_grad=True)
MMDET_CELLS = ["gp_64_4", "sum_44_4", "sum_43_3", "sum_34_4", "sum_55_5", "sum_77_7", "gp_75_6"]


def pyramid(channels, size=32, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, size >> i, size >> i, generator=g) for i, c in enumerate(channels)]


def nasfpn(**kw):
    torch.manual_seed(0)
    return SearchableNASFPN([8, 16, 32], 16, **{"num_outs": 5, "stack_times": 2, "norm_cfg": BN, **kw})


def bifpn(**kw):
    torch.manual_seed(0)
    return SearchableBiFPN([8, 16, 32], 16, **{"num_outs": 5, "num_layers": 3, **kw})


def test_published_nasfpn_arch_has_mmdets_wiring_and_parameter_count():
    torch.manual_seed(1)
    reference = NASFPN([16, 24, 32], 32, 5, stack_times=3, norm_cfg=BN).eval()
    ours = SearchableNASFPN([16, 24, 32], 32, 5, stack_times=3, norm_cfg=BN, arch=nasfpn_published_arch()).eval()
    renamed = {}
    for name, tensor in reference.state_dict().items():
        for j, cell in enumerate(MMDET_CELLS):
            name = name.replace(f".{cell}.out_conv.", f".{j}.")
        renamed[name] = tensor
    assert sorted(renamed) == sorted(ours.state_dict())
    assert count_params(ours) == count_params(reference)
    ours.load_state_dict(renamed)
    x = pyramid([16, 24, 32])
    with torch.no_grad():
        for a, b in zip(reference(x), ours(x)):
            assert torch.equal(a, b)


def test_published_bifpn_d0_arch_has_efficientdets_structure():
    torch.manual_seed(0)
    d0 = SearchableBiFPN([40, 112, 320], 64, num_outs=5, num_layers=3, arch=bifpn_d0_arch()).eval()
    # EfficientDet-D0 (64 channels, 3 layers, C3-C5 of EfficientNet-B0 = 40/112/320 channels): first-layer
    # 1x1 conv-BN adapters for P3, P4, P5 (top-down), P4, P5 (bottom-up) and P6; 8 nodes per layer, each a
    # depthwise 3x3 + pointwise 1x1 (with bias) + BN; one fusion weight per node input (2+2+2+2+3+3+3+2).
    adapters = sum(c * 64 + 64 + 2 * 64 for c in (40, 112, 320, 112, 320, 320))
    node = 64 * 9 + 64 * 64 + 64 + 2 * 64
    assert count_params(d0) == adapters + 3 * (8 * node + 19)

    # and its wiring is the published one, written out node by node (EfficientDet Fig. 2d, Eq. 2)
    x = pyramid([40, 112, 320], size=64)

    def fuse(node, inputs):
        w = F.relu(torch.stack([node.weights[k] for k in inputs]))
        w = w / (w.sum() + EPS)
        return node.conv(sum(w[i] * t for i, t in enumerate(inputs.values())))

    def up(t, like):
        return F.interpolate(t, size=like.shape[-2:], mode="nearest")

    with torch.no_grad():
        p3, p4, p5 = (d0.down_channels[f"P{i}"](x[i - 3]) for i in (3, 4, 5))
        p6 = maxpool_same(d0.extra_conv(x[2]))
        p7 = maxpool_same(p6)
        b4, b5 = d0.level_connections["P4"](x[1]), d0.level_connections["P5"](x[2])
        for i, layer in enumerate(d0.layers):
            if i:
                b4, b5 = p4, p5
            p6_td = fuse(layer["P6_td"], {"same": p6, "up": up(p7, p6)})
            p5_td = fuse(layer["P5_td"], {"same": p5, "up": up(p6_td, p5)})
            p4_td = fuse(layer["P4_td"], {"same": p4, "up": up(p5_td, p4)})
            p3 = fuse(layer["P3_out"], {"same": p3, "up": up(p4_td, p3)})
            p4 = fuse(layer["P4_out"], {"same": b4, "td": p4_td, "down": maxpool_same(p3)})
            p5 = fuse(layer["P5_out"], {"same": b5, "td": p5_td, "down": maxpool_same(p4)})
            p6 = fuse(layer["P6_out"], {"same": p6, "td": p6_td, "down": maxpool_same(p5)})
            p7 = fuse(layer["P7_out"], {"same": p7, "down": maxpool_same(p6)})
        for a, b in zip(d0(x), (p3, p4, p5, p6, p7)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("build", [nasfpn, bifpn], ids=["nasfpn", "bifpn"])
def test_every_sampled_arch_runs_forward_and_backward_and_its_fixed_subnet_matches(build):
    neck = build().eval()
    space = space_of(neck)
    rng = random.Random(0)
    x = pyramid([8, 16, 32])
    for _ in range(12):
        arch = set_arch(neck, sample(space, rng))
        outputs = neck(x)
        assert [tuple(o.shape[-2:]) for o in outputs] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]
        neck.zero_grad()
        sum(o.square().mean() for o in outputs).backward()
        subnet = fix(neck, arch)
        assert is_fixed(subnet)
        used = {name for name, _ in subnet.named_parameters()}
        for name, p in neck.named_parameters():  # gradient exactly on the weights the subnet keeps
            assert (p.grad is not None) == (name in used), name
        with torch.no_grad():
            for a, b in zip(neck(x), subnet(x)):
                assert torch.equal(a, b)
        # the config path: the neck built with `arch=` takes the supernet's tensors by name
        built = build(arch={k: v for k, v in arch}).eval()
        built.load_state_dict({k: v for k, v in neck.state_dict().items() if k in built.state_dict()})
        assert sorted(built.state_dict()) == sorted(subnet.state_dict())
        with torch.no_grad():
            assert torch.equal(built(x)[0], subnet(x)[0])


@pytest.mark.parametrize("build", [nasfpn, bifpn], ids=["nasfpn", "bifpn"])
def test_cost_table_equals_a_full_count_of_the_fixed_subnet(build):
    neck = build().eval()
    x = pyramid([8, 16, 32], batch=1)
    table = build_cost_table(neck, x)
    rng = random.Random(3)
    for _ in range(6):
        arch = sample(space_of(neck), rng)
        subnet = fix(neck, arch)
        assert table.flops(arch) == count_flops(subnet, x)
        assert table.params(arch) == count_params(subnet)


def test_bifpn_depth_gates_the_deeper_layers_choices():
    neck = bifpn()
    table = build_cost_table(neck, pyramid([8, 16, 32], batch=1))
    assert table.gates["neck.layer2.P4_out"] == ("neck.depth", (3,))
    assert "neck.layer0.P4_out" not in table.gates
    space = space_of(neck)
    a = dict(sample(space, random.Random(2)), **{"neck.depth": 1, "neck.layer2.P4_out": "same+td+down:sum"})
    b = dict(a, **{"neck.layer2.P4_out": "td"})  # a layer-2 choice ...
    assert table.flops(make_arch(space, a)) == table.flops(make_arch(space, b))  # ... costs nothing at depth 1
    assert table.flops(make_arch(space, dict(a, **{"neck.depth": 3}))) > table.flops(make_arch(space, a))


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_cells=3), "num_cells 3 must be at least num_outs 5"),
    (dict(stack_times=0), "stack_times must be at least 1"),
    (dict(arch={"neck.outputs": "P3,P4,P5,P6,P7"}), "neck.cell0.input1"),
])
def test_bad_nasfpn_settings_are_named(kwargs, message):
    with pytest.raises((ValueError, KeyError), match=message):
        nasfpn(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_outs=4), "either no extra levels or at least two"),
    (dict(fusions=("fast", "max")), "fusions must be a non-empty subset"),
    (dict(depths=(0, 2)), "depths must be integers in 1..num_layers"),
])
def test_bad_bifpn_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bifpn(**kwargs)
