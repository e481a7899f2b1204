import random

import pytest
import torch

from tasknas.core import build_cost_table, create_space, fix, list_spaces, register_space, sample, set_arch, space_of
from tasknas.core.spaces.shufflenet import DETNAS_FPN_300M, OPTIONS
from tests.openmmlab_blocked import LOADED, run_blocked

EXPECTED = {  # blocks, widths (DESIGN.md), MACs range class at 224x224 with the classifier head
    "detnas_shufflenet_small": (20, (64, 160, 320, 640), (250e6, 420e6)),
    "detnas_shufflenet_large": (40, (96, 240, 480, 960), (0.95e9, 1.6e9)),
}


def test_every_known_space_is_tested_here():
    assert set(list_spaces()) == set(EXPECTED) | {"detnas_shufflenet_demo", "detnas_shufflenet_fmnist"}


@pytest.mark.parametrize("name", list_spaces())
def test_registered_space_builds_runs_a_random_arch_and_fixes(name):
    net = create_space(name).eval()
    arch = sample(space_of(net), random.Random(0))
    set_arch(net, arch)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = net.forward_features(x)
        assert all(torch.equal(a, b) for a, b in zip(feats, fix(net, arch).forward_features(x)))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2][:len(feats)]  # strides 4, 8, 16, 32 (fmnist: 3 stages)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_detnas_spaces_match_the_paper(name):
    blocks, widths, (lo, hi) = EXPECTED[name]
    net = create_space(name, num_classes=1000)
    space = space_of(net)
    assert len(space) == blocks and all(options == OPTIONS for options in space.values())
    assert net.out_channels == widths
    table = build_cost_table(net, torch.randn(1, 3, 224, 224))
    low, high = table.range("macs")
    assert lo < low < high < hi


def test_published_detnas_300m_arch_loads_and_is_300m_class():
    net = create_space("detnas_shufflenet_small", num_classes=1000)
    arch = net.arch_from_indices(DETNAS_FPN_300M)
    assert net.arch_to_indices(arch) == list(DETNAS_FPN_300M)
    assert arch["stage0.block0"] == "k7" and arch["stage2.block0"] == "xception"
    table = build_cost_table(net, torch.randn(1, 3, 224, 224))
    assert 280e6 < table.macs(arch) < 360e6
    with pytest.raises(ValueError, match="has 3 entries; this space has 20 blocks"):
        net.arch_from_indices([0, 1, 2])
    with pytest.raises(ValueError, match=r"\[\(1, 4\)\] \(position, value\) are not in 0..3"):
        net.arch_from_indices([0, 4] + [0] * 18)


def test_unknown_space_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown search space 'detnas_shufflenet_medium'; known spaces: \["):
        create_space("detnas_shufflenet_medium")
    with pytest.raises(TypeError):
        create_space("detnas_shufflenet_small", widths=(8, 8))  # unknown keyword arguments are errors


def test_register_space_refuses_a_second_factory_under_the_same_name():
    def detnas_shufflenet_small():
        return None

    with pytest.raises(ValueError, match="already registered"):
        register_space(detnas_shufflenet_small)


CORE_CODE = f"""
import tasknas.core as core
net = core.create_space('detnas_shufflenet_small')
print({LOADED}, len(core.space_of(net)))
"""


def test_core_imports_with_the_openmmlab_packages_blocked():
    proc = run_blocked(CORE_CODE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "20"]
