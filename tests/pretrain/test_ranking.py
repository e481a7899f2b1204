"""Rank statistics of the ranking report on fixed vectors, and stratified arch selection."""
import itertools
import random

import numpy as np
import pytest
from scipy import stats

from tasknas.core.arch import Space
from tasknas.pretrain.ranking import (
    best_true_rank_at_k,
    bootstrap_interval,
    kendall_tau,
    precision_at_k,
    rank_statistics,
    regret,
    sparse_tau,
    spearman_rho,
)
from tasknas.pretrain.selection import cost_bins, stratified_archs

PRED = [0.91, 0.85, 0.88, 0.80, 0.86, 0.90, 0.83, 0.87]
TRUE = [0.90, 0.84, 0.89, 0.82, 0.83, 0.88, 0.85, 0.86]


def _tau_b_by_pairs(a, b):
    """Kendall tau-b from its definition: (C - D) / sqrt((n0 - n1)(n0 - n2))."""
    conc = disc = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
        ties_a += da == 0
        ties_b += db == 0
        if da and db:
            conc += da == db
            disc += da != db
    n0 = len(a) * (len(a) - 1) / 2
    return (conc - disc) / np.sqrt((n0 - ties_a) * (n0 - ties_b))


def test_kendall_and_spearman_equal_scipy_and_the_pair_count_definition():
    assert kendall_tau(PRED, TRUE) == pytest.approx(stats.kendalltau(PRED, TRUE).statistic, abs=1e-12)
    assert kendall_tau(PRED, TRUE) == pytest.approx(_tau_b_by_pairs(PRED, TRUE), abs=1e-12)
    assert kendall_tau(PRED, TRUE) == pytest.approx(20 / 28)  # 24 concordant, 4 discordant pairs
    assert spearman_rho(PRED, TRUE) == pytest.approx(stats.spearmanr(PRED, TRUE).statistic, abs=1e-12)
    ties = [0.5, 0.5, 0.6, 0.7, 0.7, 0.8]
    other = [0.1, 0.3, 0.2, 0.4, 0.4, 0.5]
    assert kendall_tau(ties, other) == pytest.approx(_tau_b_by_pairs(ties, other), abs=1e-12)
    assert kendall_tau(PRED, PRED) == pytest.approx(1.0)
    assert kendall_tau(PRED, [-v for v in PRED]) == pytest.approx(-1.0)


def test_sparse_tau_counts_differences_below_the_resolution_as_ties():
    pred = [0.9000, 0.9004, 0.8000, 0.7000]  # the first two differ by 0.04 pt
    true = [0.9100, 0.9000, 0.8000, 0.7000]
    assert kendall_tau(pred, true) < 1.0
    assert sparse_tau(pred, true, resolution=0.1) == pytest.approx(_tau_b_by_pairs([900, 900, 800, 700],
                                                                                   [910, 900, 800, 700]))
    assert sparse_tau(pred, true, resolution=0.0) == kendall_tau(pred, true)


def test_topk_measures_and_regret_on_fixed_vectors():
    # supernet top 3: indices 0, 5, 2; stand-alone top 3: 0, 2, 5 -> 3/3
    assert precision_at_k(PRED, TRUE, 3) == 1.0
    # supernet top 2: 0, 5; stand-alone top 2: 0, 2 -> 1/2
    assert precision_at_k(PRED, TRUE, 2) == 0.5
    assert best_true_rank_at_k(PRED, TRUE, 1) == 1
    flipped = [-v for v in PRED]  # supernet's best is index 3, the stand-alone worst (rank 8)
    assert best_true_rank_at_k(flipped, TRUE, 1) == 8
    assert best_true_rank_at_k(flipped, TRUE, 2) == 5  # then index 6: 0.85 is rank 5
    assert regret(PRED, TRUE) == 0.0
    assert regret(flipped, TRUE) == pytest.approx(0.90 - 0.82)


def test_bootstrap_interval_is_seeded_and_holds_the_estimate():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.8, 0.9, 24)
    pred = true + rng.normal(0, 0.02, 24)
    lo, hi = bootstrap_interval(pred, true, kendall_tau, resamples=500, seed=3)
    assert (lo, hi) == bootstrap_interval(pred, true, kendall_tau, resamples=500, seed=3)
    assert -1 <= lo < kendall_tau(pred, true) < hi <= 1
    report = rank_statistics(pred, true, k=5, resamples=200)
    assert report["n"] == 24 and report["kendall_tau"] == pytest.approx(stats.kendalltau(pred, true).statistic)
    assert set(report) >= {"kendall_tau_ci95", "spearman_rho", "spearman_rho_ci95", "sparse_tau_0.1pt",
                           "precision_at_5", "best_true_rank_at_5", "regret"}


def test_rank_statistics_reject_unequal_vectors():
    with pytest.raises(ValueError, match="equal-length"):
        kendall_tau([0.1, 0.2, 0.3], [0.1, 0.2])


def test_cost_bins_are_equal_width_with_the_maximum_in_the_last():
    assert cost_bins([0, 1, 2, 3, 4, 10], 5) == [0, 0, 1, 1, 2, 4]
    assert cost_bins([5, 5, 5], 3) == [0, 0, 0]


def test_stratified_archs_are_distinct_and_cover_every_nonempty_cost_bin():
    space = Space({f"b{i}": (0, 1, 2, 3) for i in range(8)})
    cost = lambda arch: float(sum(v * v for _, v in arch))  # noqa: E731
    archs = stratified_archs(space, cost, 12, random.Random(0), pool=3000)
    assert len({a.to_json(indent=None) for a in archs}) == 12
    costs = [cost(a) for a in archs]
    assert costs == sorted(costs)
    # the pool's range, cut into 12 bins: every bin that holds a pool arch holds a chosen one
    pool_rng = random.Random(0)
    from tasknas.core import sample

    pool = {sample(space, pool_rng).to_json(indent=None): None for _ in range(3000)}
    from tasknas.core.arch import Arch

    pool_costs = [cost(Arch.from_json(t, space)) for t in pool]
    lo, hi = min(pool_costs), max(pool_costs)
    filled = {min(int((c - lo) / (hi - lo) * 12), 11) for c in pool_costs}
    chosen = {min(int((c - lo) / (hi - lo) * 12), 11) for c in costs}
    assert chosen == filled
    # uniform draws cluster in the middle; the stratified ones reach both ends of the range
    assert min(costs) <= lo + (hi - lo) / 12 and max(costs) >= hi - (hi - lo) / 12
