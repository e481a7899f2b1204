"""Every search strategy: the budget, dedup, constraints, exact resume, the surrogate and its correlation."""
import logging
import math
import random
from dataclasses import replace

import numpy as np
import pytest

from tasknas.core import STRATEGIES, EvolutionConfig, evolve, load_result, sample
from tasknas.core.predictor import Surrogate, kendall_tau
from tests.core.test_evolution import SPACE, TARGET, cost, crash_at, planted, summary

ALL = sorted(STRATEGIES)


@pytest.mark.parametrize("strategy", ALL)
@pytest.mark.parametrize("budget", [7, 40])
def test_the_budget_is_spent_exactly_and_never_exceeded(strategy, budget):
    calls = []
    config = EvolutionConfig(strategy=strategy, budget=budget, seed=1)
    result = evolve(SPACE, lambda a: calls.append(a) or planted(a), config, cost=cost)
    assert len(calls) == len(result.records) == budget  # the space is far larger than the budget
    assert len(set(calls)) == budget  # no arch scored twice
    assert [r.index for r in result.records] == list(range(budget))
    best = max(result.records, key=lambda r: (r.score, -r.index))
    assert (result.best, result.best_score) == (best.arch, best.score)
    assert result.topk[0] == best and len(result.topk) == min(config.topk, budget)
    assert result.pareto and result.generations >= 1


@pytest.mark.parametrize("strategy", ALL)
def test_constraints_filter_every_proposal_before_it_is_scored(strategy):
    seen = []
    result = evolve(SPACE, lambda a: seen.append(a) or planted(a),
                    EvolutionConfig(strategy=strategy, budget=30, seed=2), constraints=[lambda a: cost(a) <= 26])
    assert len(seen) == 30 and all(cost(a) <= 26 for a in seen)
    assert len(result.records) == 30


@pytest.mark.parametrize("strategy", ALL)
def test_an_interrupted_search_resumes_to_the_identical_result(strategy, tmp_path):
    config = EvolutionConfig(strategy=strategy, budget=36, population=8, seed=3)
    full = evolve(SPACE, planted, config, cost=cost)
    state = tmp_path / "s.json"
    for n in (5, 13, 22):  # crash, resume, crash again later, ...
        with pytest.raises(KeyboardInterrupt):
            evolve(SPACE, crash_at(n - len(load_result(state, SPACE).records) if state.exists() else n),
                   config, cost=cost, state_path=state, resume=True)
    resumed = evolve(SPACE, planted, config, cost=cost, state_path=state, resume=True)
    assert summary(resumed) == summary(full)
    assert summary(load_result(state, SPACE)) == summary(full)


def test_resuming_the_predictor_from_every_saved_state_refits_the_same_surrogate(tmp_path):
    state, journal = tmp_path / "s.json", tmp_path / "s.records.jsonl"
    config = EvolutionConfig(strategy="predictor", budget=30, population=6, batch=4, seed=4)
    saved = []
    full = evolve(SPACE, planted, config, state_path=state,
                  progress=lambda _: saved.append((state.read_bytes(), journal.read_bytes())))
    for i, (snapshot, records) in enumerate(saved):
        (tmp_path / f"r{i}.json").write_bytes(snapshot)
        (tmp_path / f"r{i}.records.jsonl").write_bytes(records)
        resumed = evolve(SPACE, planted, config, state_path=tmp_path / f"r{i}.json", resume=True)
        assert summary(resumed) == summary(full), f"resume after candidate {i + 1} diverged"


def test_an_unknown_strategy_is_one_error_listing_the_strategies():
    with pytest.raises(ValueError, match=r"unknown search strategy 'bayes'; expected one of evolution, regularized, "
                                         r"predictor, random"):
        EvolutionConfig(strategy="bayes")


def test_a_budget_below_the_population_is_an_error_or_a_documented_adjustment():
    with pytest.raises(ValueError, match=r"population \(50\) is larger than the budget \(20\)"):
        EvolutionConfig(strategy="evolution", population=50, budget=20)
    with pytest.raises(ValueError, match=r"population \(50\) is larger than the budget \(20\)"):
        EvolutionConfig.preset("spos", budget=20)
    for strategy in ALL:  # derived: never above the budget
        assert EvolutionConfig(strategy=strategy, budget=3).population == 3
        assert EvolutionConfig(strategy=strategy, budget=100).population <= 20


def test_presets_are_the_papers_settings_and_take_a_budget():
    spos, detnas = EvolutionConfig.preset("spos"), EvolutionConfig.preset("detnas", budget=120, seed=5)
    assert (spos.strategy, spos.population, spos.topk, spos.mutations, spos.crossovers, spos.generations) == \
        ("evolution", 50, 10, 25, 25, 20)
    assert (detnas.population, detnas.mutations, detnas.crossovers, detnas.budget, detnas.seed) == (50, 20, 20, 120, 5)
    with pytest.raises(ValueError, match="unknown evolution preset 'darts'; expected one of spos, detnas"):
        EvolutionConfig.preset("darts")
    with pytest.raises(ValueError, match=r"unknown evolution settings \['popsize'\]"):
        EvolutionConfig.preset("spos", popsize=3)


def test_the_default_strategy_is_the_predictor_and_max_scored_is_what_a_search_scores():
    assert EvolutionConfig().strategy == "predictor"
    for config in (EvolutionConfig(), EvolutionConfig(strategy="regularized", generations=5),
                   EvolutionConfig(strategy="evolution", population=6, mutations=2, crossovers=2, generations=3),
                   EvolutionConfig(strategy="random", budget=17)):
        assert len(evolve(SPACE, planted, config).records) == config.max_scored
    assert (EvolutionConfig().max_scored, EvolutionConfig.preset("detnas").max_scored) == (50 + 19 * 10, 1000)


def test_the_predictor_beats_random_search_on_a_planted_optimum():
    wins = 0
    for seed in range(4):
        guided = evolve(SPACE, planted, EvolutionConfig(strategy="predictor", budget=60, seed=seed))
        rand = evolve(SPACE, planted, EvolutionConfig(strategy="random", budget=60, seed=seed))
        wins += guided.best_score > rand.best_score
    assert wins == 4


def test_the_predictor_logs_the_surrogates_kendall_tau(caplog):
    events = []
    with caplog.at_level(logging.INFO, logger="tasknas.search"):
        evolve(SPACE, planted, EvolutionConfig(strategy="predictor", budget=30, seed=6), progress=events.append)
    lines = [r.getMessage() for r in caplog.records if "Kendall tau" in r.getMessage()]
    assert lines and "leave-one-out" in lines[-1]
    loo, before = events[-1]["surrogate_tau"]
    assert 0.3 < loo <= 1.0 and -1.0 <= before <= 1.0  # the planted score is additive: the surrogate ranks it


def test_kendall_tau_is_scipys_tau_b():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for n in (2, 5, 40):
        x = [rng.randint(0, 5) for _ in range(n)]  # with ties
        y = [v + rng.random() * 3 for v in x]
        assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12, nan_ok=True)
    assert math.isnan(kendall_tau([1.0], [2.0])) and math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_the_surrogate_is_deterministic_and_its_leave_one_out_is_a_refit_without_the_point():
    rng = random.Random(1)
    archs = list(dict.fromkeys(sample(SPACE, rng) for _ in range(25)))
    scores = [planted(a) + rng.gauss(0, 0.3) for a in archs]
    a, b = Surrogate(SPACE).fit(archs, scores), Surrogate(SPACE).fit(archs, scores)
    probe = [sample(SPACE, rng) for _ in range(10)]
    assert all(np.array_equal(u, v) for u, v in zip(a.predict(probe), b.predict(probe)))
    # leave-one-out = the GP posterior mean at arch i given the other archs' (normal-score) targets
    x, y = a._x, a._y
    k = a._kernel(x, x, a.lengthscale)
    loo = a.leave_one_out()
    for i in (0, 7, len(archs) - 1):
        rest = [j for j in range(len(archs)) if j != i]
        alpha = np.linalg.solve(k[np.ix_(rest, rest)] + a.noise * np.eye(len(rest)), y[rest])
        assert loo[i] == pytest.approx(float(k[i, rest] @ alpha), abs=1e-9)
    mean, std = a.predict([TARGET, archs[0]])
    assert mean[0] > mean[1] and std[0] > std[1]  # the planted optimum was never fitted; archs[0] was
    assert kendall_tau(loo, scores) > 0.3


@pytest.mark.parametrize("strategy", ALL)
def test_a_non_finite_score_is_an_error_naming_the_arch(strategy, tmp_path):
    bad = sample(SPACE, random.Random(9))

    def score(arch):
        return math.inf if arch == bad else planted(arch)

    config = EvolutionConfig(strategy=strategy, budget=12, population=6, seed=9)
    state = tmp_path / "s.json"
    calls = []
    evolve(SPACE, lambda a: calls.append(a) or planted(a), config)
    bad = calls[3]
    with pytest.raises(ValueError, match=r"score function returned inf for Arch\(.*on_nonfinite='skip'"):
        evolve(SPACE, score, config, state_path=state)
    resumed = evolve(SPACE, planted, config, state_path=state, resume=True)  # nothing lost: fix and resume
    assert [r.arch for r in resumed.records] == calls
    skipped = evolve(SPACE, score, replace(config, on_nonfinite="skip"))
    assert skipped.best != bad and any(r.score == math.inf for r in skipped.records)


def test_all_scores_non_finite_is_an_error_not_an_arbitrary_best():
    with pytest.raises(ValueError, match="none of the 8 scored candidates got a finite score"):
        evolve(SPACE, lambda a: math.nan, EvolutionConfig(strategy="evolution", budget=8, on_nonfinite="skip"))
