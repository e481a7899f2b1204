import random
from collections import Counter

import pytest

from tasknas.core import FlopsBinnedSampler, broadcast_arch, crossover, make_arch, mutate, sample, sample_like, space_of
from tasknas.core.arch import Space
from tests.core.nets import tiny_shufflenet

SPACE = Space({f"b{i}": ("k3", "k5", "k7", "xception") for i in range(12)})


def test_sample_is_a_valid_arch_and_deterministic_for_a_seed():
    a = [sample(SPACE, random.Random(7)) for _ in range(2)]
    assert a[0] == a[1] and make_arch(SPACE, a[0]) == a[0]
    assert sample(SPACE, random.Random(8)) != a[0]


def test_uniform_sampling_hits_every_option_about_equally():
    rng = random.Random(0)
    counts = Counter(sample(SPACE, rng)["b3"] for _ in range(4000))
    assert set(counts) == set(SPACE["b3"])
    assert all(900 <= c <= 1100 for c in counts.values()), counts


def test_mutate_with_prob_zero_is_identity_and_with_prob_one_resamples_uniformly():
    rng = random.Random(1)
    arch = sample(SPACE, rng)
    assert mutate(arch, SPACE, rng, prob=0.0) == arch
    changed = sum(mutate(arch, SPACE, rng, prob=1.0)["b0"] != arch["b0"] for _ in range(2000))
    assert 1350 <= changed <= 1650  # 3/4 of resamples pick another option
    with pytest.raises(ValueError, match="prob must be in"):
        mutate(arch, SPACE, rng, prob=1.5)


def test_crossover_takes_each_key_from_one_of_the_parents():
    rng = random.Random(2)
    a, b = sample(SPACE, rng), sample(SPACE, rng)
    for _ in range(50):
        child = crossover(a, b, rng)
        assert all(child[k] in (a[k], b[k]) for k in SPACE)
    assert crossover(a, a, rng) == a


def test_flops_binned_sampler_lands_in_the_chosen_bins_and_covers_them_all():
    table = {k: {"k3": 1.0, "k5": 2.0, "k7": 3.0, "xception": 4.0} for k in SPACE}
    cost = lambda arch: sum(table[k][o] for k, o in arch)  # noqa: E731
    sampler = FlopsBinnedSampler(SPACE, cost, num_bins=5, max_tries=200)
    lo, hi = sampler.bins[0][0], sampler.bins[-1][1]
    assert 12 < lo < 30 < hi < 48  # a central range of the exact span [12, 48]
    rng = random.Random(3)
    hits = Counter()
    for _ in range(500):
        c = cost(sampler(rng))
        hits[next((i for i, (a, b) in enumerate(sampler.bins) if a <= c <= b), None)] += 1
    assert sampler.fallbacks == 0 and None not in hits
    assert all(70 <= hits[i] <= 130 for i in range(5)), hits  # uniform over bins, unlike plain uniform sampling


def test_flops_binned_sampler_falls_back_after_bounded_tries():
    cost = lambda arch: 0.0 if arch["b0"] == "k3" else 1.0  # noqa: E731  (most mass in one cost)
    sampler = FlopsBinnedSampler(SPACE, cost, num_bins=4, max_tries=1, coverage=1.0)
    rng = random.Random(0)
    for _ in range(200):
        make_arch(SPACE, sampler(rng))
    assert 0 < sampler.fallbacks < 200


def test_broadcast_arch_without_a_process_group_returns_the_arch():
    space = space_of(tiny_shufflenet())
    arch = sample(space, random.Random(0))
    assert broadcast_arch(arch, space) == arch


def test_sample_like_returns_another_arch_of_about_the_same_cost_or_none():
    cost = lambda arch: sum(("k3", "k5", "k7", "xception").index(o) + 1.0 for _, o in arch)  # noqa: E731
    target = sample(SPACE, random.Random(4))
    other = sample_like(SPACE, cost, target, random.Random(5), tolerance=0.05)
    assert other is not None and other != target and abs(cost(other) - cost(target)) <= 0.05 * cost(target)
    tiny = Space({"a": ("k3", "k5")})
    assert sample_like(tiny, lambda a: 1.0 if a["a"] == "k3" else 9.0, make_arch(tiny, {"a": "k3"}),
                       random.Random(0), tries=50) is None
