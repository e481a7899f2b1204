"""FairNAS strict fairness and GreedyNAS path filtering (tasknas.core.fair), and the trainer's use of them."""
import random

import pytest
import torch

from tasknas.core import sample, set_arch, space_of
from tasknas.core.arch import Space
from tasknas.core.fair import GreedyPathFilter, fair_paths
from tasknas.pretrain.model import SupernetClassifier
from tasknas.pretrain.trainer import make_optimizer, train_step

SPACE = Space({"a": ("k3", "k5", "k7", "x"), "b": ("k3", "k5", "k7", "x"), "c": ("p", "q", "r", "s")})


def test_fair_paths_use_every_option_of_every_choice_exactly_once_per_step():
    rng = random.Random(0)
    seen_orders = set()
    for _ in range(50):
        paths = fair_paths(SPACE, rng)
        assert len(paths) == 4
        for key in SPACE:
            assert sorted(p.as_dict()[key] for p in paths) == sorted(SPACE[key])
        seen_orders.add(tuple(p.as_dict()["a"] for p in paths))
    assert len(seen_orders) > 10  # independent random permutations, not a fixed order


def test_fair_paths_with_fewer_options_use_each_at_least_once():
    space = Space({"a": (1, 2, 3), "b": ("u", "v")})
    paths = fair_paths(space, random.Random(1))
    assert len(paths) == 3
    assert sorted(p.as_dict()["a"] for p in paths) == [1, 2, 3]
    assert set(p.as_dict()["b"] for p in paths) == {"u", "v"}


def test_greedy_filter_keeps_the_lowest_loss_paths_and_pools_them():
    loss = lambda arch: sum(SPACE[k].index(v) for k, v in arch)  # noqa: E731  (planted: all-first is best)
    # the kept paths of a step are the best of its candidates
    probe = GreedyPathFilter(SPACE, candidates=8, keep=3)
    candidates = probe.draw(random.Random(7), 0.0)
    kept = probe.filter(random.Random(7), loss, 0.0)
    assert len(candidates) == 8 and sorted(map(loss, kept)) == sorted(map(loss, candidates))[:3]
    # over many steps the pool holds the pool_size best paths ever kept, by loss
    greedy = GreedyPathFilter(SPACE, candidates=8, keep=3, pool_size=5)
    rng = random.Random(0)
    ever_kept = {}
    for step in range(20):
        for arch in greedy.filter(rng, loss, step / 20):
            ever_kept[arch.to_json(indent=None)] = loss(arch)
        assert len(greedy.pool) <= 5
    assert greedy.evaluated <= 20 * 8
    best = sorted(ever_kept.items(), key=lambda item: (item[1], item[0]))[:5]
    assert sorted(greedy.pool) == sorted(text for text, _ in best)
    state = greedy.state_dict()
    again = GreedyPathFilter(SPACE, candidates=8, keep=3, pool_size=5)
    again.load_state_dict(state)
    assert again.state_dict() == state
    assert greedy.draw(random.Random(3), 1.0) == again.draw(random.Random(3), 1.0)


def test_greedy_filter_exploits_the_pool_late_in_training():
    greedy = GreedyPathFilter(SPACE, candidates=4, keep=2, pool_prob=(0.0, 1.0))
    greedy.filter(random.Random(0), lambda a: 0.0, 0.0)
    pooled = {a.to_json(indent=None) for _, a in greedy.pool.values()}
    late = greedy.draw(random.Random(1), 1.0)  # probability 1: only pool members (bounded draws, fewer if few)
    assert late and all(a.to_json(indent=None) in pooled for a in late)


@pytest.mark.parametrize("bad", [dict(candidates=2, keep=3), dict(keep=0), dict(pool_size=1, keep=2),
                                 dict(pool_prob=(0.0, 1.5))])
def test_greedy_filter_rejects_bad_settings_by_name(bad):
    with pytest.raises(ValueError, match="|".join(bad)):
        GreedyPathFilter(SPACE, **bad)


def test_fair_step_is_one_optimizer_step_on_the_summed_gradients_of_its_m_paths():
    torch.manual_seed(0)
    model = SupernetClassifier("detnas_shufflenet_fmnist", 4, in_channels=1, last_channels=16)
    space = space_of(model)
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 4, (8,))
    paths = fair_paths(space, random.Random(0))
    model.train()
    # reference: the gradient of each path alone (BN in train mode uses batch statistics, so they add up)
    expected = {}
    for arch in paths:
        model.zero_grad(set_to_none=True)
        set_arch(model, arch)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                expected[name] = expected.get(name, 0) + p.grad.clone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(before)
    opt = make_optimizer(model, "momentum", lr=0.1, weight_decay=0.0, momentum=0.0)  # plain SGD
    steps = []
    opt.register_step_post_hook(lambda *_: steps.append(1))
    train_step(model, opt, x, y, paths, grad_clip=None)
    assert len(steps) == 1
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert sorted(grads) == sorted(expected)  # every option of every block got a gradient
    for name, g in grads.items():
        torch.testing.assert_close(g, expected[name], rtol=1e-5, atol=1e-6)
    # SGD without momentum: w - lr * g
    after = dict(model.named_parameters())
    for name, g in grads.items():
        torch.testing.assert_close(after[name].detach(), before[name] - 0.1 * g, rtol=1e-5, atol=1e-6)


def test_single_path_step_leaves_every_off_path_option_bit_identical():
    torch.manual_seed(0)
    model = SupernetClassifier("detnas_shufflenet_fmnist", 4, in_channels=1, last_channels=16)
    space = space_of(model)
    arch = sample(space, random.Random(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, "sgd", lr=0.1, weight_decay=1e-2)
    for _ in range(2):
        train_step(model, opt, torch.randn(8, 1, 16, 16), torch.randint(0, 4, (8,)), [arch])
    on_path = {f"stages.{i}.{j}.candidates.{opt_}." for i, j, opt_ in [
        (int(k[5]), int(k.split("block")[1]), v) for k, v in arch]}
    changed_off = [k for k, v in model.state_dict().items() if ".candidates." in k
                   and not any(p in k for p in on_path) and not torch.equal(v, before[k])]
    changed_on = [k for k, v in model.state_dict().items() if any(p in k for p in on_path)
                  and not torch.equal(v, before[k])]
    assert changed_off == [] and changed_on
