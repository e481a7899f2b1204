import math
import random

import pytest
import torch
from torch import nn

from tasknas.core import Choice, batchnorms, recalibrate_bn, running_stats_kept, sample, set_arch, space_of
from tests.core.nets import tiny_shufflenet


class BNPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.pick = Choice("pick", {"a": nn.BatchNorm2d(3), "b": nn.BatchNorm2d(3)})
        self.after = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.after(self.pick(x))


def _batches(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 6, 6, generator=g) * (i + 1) + i for i in range(n)]


def test_recalibrated_stats_equal_the_average_of_per_batch_statistics():
    net = BNPath()
    set_arch(net, {"pick": "a"})
    batches = _batches()
    assert recalibrate_bn(net, batches) == len(batches)
    means = torch.stack([b.mean((0, 2, 3)) for b in batches])
    vars_ = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches])
    bn = net.pick.candidates["a"]
    torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(bn.running_var, vars_.mean(0), rtol=0, atol=1e-5)
    assert int(bn.num_batches_tracked) == len(batches)


def test_bns_off_the_active_path_are_untouched_and_flags_restored():
    net = BNPath().eval()
    off = net.pick.candidates["b"]
    off.running_mean.fill_(3.0)
    off.running_var.fill_(7.0)
    off.num_batches_tracked.fill_(11)
    set_arch(net, {"pick": "a"})
    recalibrate_bn(net, _batches())
    assert torch.equal(off.running_mean, torch.full((3,), 3.0)) and torch.equal(off.running_var, torch.full((3,), 7.0))
    assert int(off.num_batches_tracked) == 11
    assert not net.training and not any(m.training for m in net.modules())
    assert all(bn.momentum == 0.1 for bn in batchnorms(net))


def test_recalibration_uses_all_batches_not_an_ema_and_ignores_old_stats():
    net = BNPath()
    set_arch(net, {"pick": "b"})
    recalibrate_bn(net, _batches(seed=1))
    first = net.pick.candidates["b"].running_mean.clone()
    recalibrate_bn(net, _batches(seed=1))
    assert torch.equal(first, net.pick.candidates["b"].running_mean)


def test_max_batches_and_empty_loader():
    net = BNPath()
    set_arch(net, {"pick": "a"})
    assert recalibrate_bn(net, iter(_batches(6)), max_batches=2) == 2
    before = net.pick.candidates["a"].running_mean.clone()
    with pytest.raises(ValueError, match="no calibration batches"):
        recalibrate_bn(net, [])
    assert torch.equal(before, net.pick.candidates["a"].running_mean)


def test_a_failing_forward_leaves_the_old_statistics():
    net = BNPath()
    set_arch(net, {"pick": "a"})
    recalibrate_bn(net, _batches())
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def failing(model, batch):
        model(batch)
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        recalibrate_bn(net, _batches(seed=3), forward=failing)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_only_batchnorm_layers_switch_to_train_mode():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x

    net = nn.Sequential(Probe(), nn.BatchNorm2d(3)).eval()
    recalibrate_bn(net, _batches(2))
    assert seen == [False, False] and int(net[1].num_batches_tracked) == 2 and not net[1].training


def test_a_bn_on_the_path_that_the_forward_skips_keeps_its_statistics():
    class Skipping(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.BatchNorm2d(3), nn.BatchNorm2d(3)

        def forward(self, x):
            return self.used(x)

    net = Skipping()
    net.unused.running_mean.fill_(2.0)
    recalibrate_bn(net, _batches(2))
    assert torch.equal(net.unused.running_mean, torch.full((3,), 2.0)) and int(net.used.num_batches_tracked) == 2


def test_bn_frozen_in_eval_mode_is_still_recalibrated():
    class Frozen(BNPath):
        def train(self, mode=True):
            super().train(mode)
            self.after.eval()  # like mmdet's norm_eval
            return self

    net = Frozen()
    set_arch(net, {"pick": "a"})
    recalibrate_bn(net, _batches())
    assert int(net.after.num_batches_tracked) == 5


def test_recalibration_on_a_supernet_changes_only_bns_of_the_active_arch():
    from tasknas.core import choices_of

    net = tiny_shufflenet()
    arch = sample(space_of(net), random.Random(0))
    set_arch(net, arch)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    recalibrate_bn(net, [torch.randn(2, 3, 32, 32) for _ in range(3)])
    after = net.state_dict()
    assert all(torch.equal(before[k], v) for k, v in after.items() if "running_" not in k and "num_batches" not in k)
    for choice in choices_of(net):
        for option, module in choice.candidates.items():
            for bn in batchnorms(module):
                if option == choice.active:
                    assert int(bn.num_batches_tracked) == 3
                else:
                    assert int(bn.num_batches_tracked) == 0
                    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_calibration_batch_is_an_error_and_leaves_the_statistics_as_they_were(bad):
    net = BNPath()
    set_arch(net, {"pick": "a"})
    recalibrate_bn(net, _batches())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batches = _batches()
    batches[2][1, 0, 3, 3] = bad
    with pytest.raises(ValueError, match=r"non-finite running statistics in BN 'pick\.candidates\.a'.*left as they"):
        recalibrate_bn(net, batches)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.pick.candidates["a"].momentum == 0.1 and net.training


def test_running_stats_kept_uses_batch_statistics_and_leaves_every_running_statistic():
    torch.manual_seed(0)
    net = tiny_shufflenet()
    set_arch(net, sample(space_of(net), random.Random(0)))
    net.train()
    x = torch.randn(4, 3, 32, 32) * 3 + 1
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad(), running_stats_kept(net):
        inside = net(x)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # nothing moved, counts included
    assert [m.momentum for m in batchnorms(net)] == [0.1] * len(batchnorms(net))  # momenta restored
    with torch.no_grad():
        outside = net(x)  # train mode: the same batch statistics, so the same output ...
    assert torch.allclose(inside, outside)
    assert any(not torch.equal(v, net.state_dict()[k]) for k, v in before.items() if "running_mean" in k)  # ... moved
