import json
import math
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tasknas.core import EvolutionConfig, evolve, load_result, make_arch, pareto_front, sample
from tasknas.core.arch import Space

SPACE = Space({f"b{i:02d}": ("k3", "k5", "k7", "xception") for i in range(12)})
TARGET = make_arch(SPACE, {k: ("k7" if i % 3 else "xception") for i, k in enumerate(SPACE)})
WEIGHT = {k: 1.0 + i / 100 for i, k in enumerate(SPACE)}
FLOPS = {"k3": 1.0, "k5": 2.0, "k7": 3.0, "xception": 4.0}


def planted(arch):
    return sum(WEIGHT[k] for k, o in arch if o == TARGET[k])


def cost(arch):
    return sum(FLOPS[o] for _, o in arch)


def crash_at(n):
    """A score function that is interrupted at its n-th call (like Ctrl-C or a killed job)."""
    calls = []

    def score(arch):
        calls.append(arch)
        if len(calls) == n:
            raise KeyboardInterrupt
        return planted(arch)

    return score


def summary(result):
    return [(r.arch, r.score, r.generation, r.index, r.cost) for r in result.records], result.best


def spos(**settings):
    """The SPOS/DetNAS evolution (these tests check its own mechanics: mutations, crossovers, generations)."""
    return EvolutionConfig(strategy="evolution", **settings)


def test_evolution_without_a_budget_has_the_spos_settings():
    c = spos()
    got = (c.population, c.topk, c.mutations, c.mutation_prob, c.crossovers, c.generations)
    assert got == (50, 10, 25, 0.1, 25, 20)
    assert c == EvolutionConfig.preset("spos")


def test_evolution_finds_a_planted_optimum_that_random_search_misses():
    result = evolve(SPACE, planted, spos(population=30, topk=8, mutations=12, crossovers=12, generations=15,
                                                    seed=1))
    assert result.best == TARGET and result.best_score == pytest.approx(sum(WEIGHT.values()))
    rng = random.Random(1)
    best_random = max(planted(sample(SPACE, rng)) for _ in range(len(result.records)))
    assert best_random < result.best_score


def test_no_arch_is_scored_twice_and_topk_is_global_and_sorted():
    config = spos(population=20, topk=5, mutations=8, crossovers=8, generations=6, seed=2)
    result = evolve(SPACE, planted, config)
    archs = [r.arch for r in result.records]
    assert len(archs) == len(set(archs)) == 20 * 6
    assert [r.score for r in result.topk] == sorted((r.score for r in result.records), reverse=True)[:5]


def test_constraints_are_checked_before_scoring():
    seen = []

    def score(arch):
        seen.append(arch)
        return planted(arch)

    result = evolve(SPACE, score, spos(population=20, topk=5, mutations=8, crossovers=8, generations=5,
                                                  seed=3), constraints=[lambda a: cost(a) <= 26], cost=cost)
    assert seen and all(cost(a) <= 26 for a in seen)
    assert all(r.cost <= 26 for r in result.records)


def test_a_constraint_no_arch_meets_fails_before_any_scoring():
    calls = []
    with pytest.raises(ValueError, match="no arch of the space met the constraints"):
        evolve(SPACE, lambda a: calls.append(a) or 0.0,
               spos(population=10, topk=3, mutations=2, crossovers=2, generations=2, max_tries=3),
               constraints=[lambda a: cost(a) < 0])
    assert calls == []


def test_proposal_loops_are_bounded_when_the_space_runs_out():
    tiny = Space({"a": (0, 1), "b": (0, 1)})
    result = evolve(tiny, lambda a: a["a"] + 2 * a["b"],
                    spos(population=10, topk=2, mutations=3, crossovers=3, generations=5, seed=0))
    assert len(result.records) == 4 and result.best == make_arch(tiny, {"a": 1, "b": 1})
    assert result.generations < 5


def test_pareto_front_is_non_dominated_and_contains_the_best():
    result = evolve(SPACE, planted, spos(population=20, topk=5, mutations=8, crossovers=8, generations=4,
                                                    seed=4), cost=cost)
    front = result.pareto
    assert front == pareto_front(result.records) and result.best in [r.arch for r in front]
    for r in front:
        assert not any(o.score >= r.score and o.cost <= r.cost and (o.score > r.score or o.cost < r.cost)
                       for o in result.records)
    assert [r.cost for r in front] == sorted(r.cost for r in front)


def test_resuming_from_any_saved_state_gives_the_uninterrupted_result(tmp_path):
    state = tmp_path / "state.json"
    journal = tmp_path / "state.records.jsonl"
    snapshots = []

    def keep(_info):
        snapshots.append((state.read_text(), journal.read_text()))

    kwargs = dict(config=spos(population=12, topk=4, mutations=4, crossovers=4, generations=4, seed=5),
                  cost=cost)
    full = evolve(SPACE, planted, state_path=state, progress=keep, **kwargs)
    assert len(snapshots) == len(full.records)
    for i, snap in enumerate(snapshots):
        if i % 5 and i != len(snapshots) - 1:
            continue
        resumed_path = tmp_path / f"resume{i}.json"
        resumed_path.write_text(snap[0])
        (tmp_path / f"resume{i}.records.jsonl").write_text(snap[1])
        resumed = evolve(SPACE, planted, state_path=resumed_path, resume=True, **kwargs)
        assert summary(resumed) == summary(full), f"resume from snapshot {i} diverged"
    assert summary(load_result(state, SPACE)) == summary(full)


def test_interrupted_search_resumes_to_the_same_result(tmp_path):
    kwargs = dict(config=spos(population=12, topk=4, mutations=4, crossovers=4, generations=3, seed=6))
    full = evolve(SPACE, planted, **kwargs)
    state = tmp_path / "s.json"
    with pytest.raises(KeyboardInterrupt):
        evolve(SPACE, crash_at(17), state_path=state, **kwargs)
    assert len((tmp_path / "s.records.jsonl").read_text().splitlines()) == 16
    resumed = evolve(SPACE, planted, state_path=state, resume=True, **kwargs)
    assert summary(resumed) == summary(full)


def test_resume_refuses_other_settings_and_fresh_runs_refuse_to_overwrite(tmp_path):
    state = tmp_path / "s.json"
    config = spos(population=6, topk=2, mutations=2, crossovers=2, generations=1)
    evolve(SPACE, planted, config, state_path=state)
    with pytest.raises(ValueError, match=r"other settings .*'population': \(6, 8\)"):
        evolve(SPACE, planted, replace(config, population=8), state_path=state, resume=True)
    with pytest.raises(FileExistsError, match="pass resume=True"):
        evolve(SPACE, planted, config, state_path=state)
    with pytest.raises(ValueError, match="different space"):
        evolve(Space({"x": (1, 2)}), lambda a: 0.0, config, state_path=state, resume=True)


def test_state_files_are_never_torn(tmp_path):
    state = tmp_path / "s.json"
    seen = []

    def check(info):
        json.loads(state.read_text())  # always complete JSON
        lines = (tmp_path / "s.records.jsonl").read_text().splitlines()
        assert len(lines) == info["scored"] and all(json.loads(line) for line in lines)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.records.jsonl"]  # no temporary file
        seen.append(info["scored"])

    evolve(SPACE, planted, spos(population=6, topk=2, mutations=2, crossovers=2, generations=2),
           state_path=state, progress=check)
    assert seen == list(range(1, 13))


def test_a_torn_journal_line_is_dropped_and_the_search_resumes_to_the_same_result(tmp_path):
    kwargs = dict(config=spos(population=8, topk=3, mutations=3, crossovers=3, generations=3, seed=8))
    full = evolve(SPACE, planted, **kwargs)
    state = tmp_path / "s.json"
    with pytest.raises(KeyboardInterrupt):
        evolve(SPACE, crash_at(11), state_path=state, **kwargs)
    journal = tmp_path / "s.records.jsonl"
    with open(journal, "a") as f:
        f.write('{"arch": ["k3", "k5"')  # a crash in the middle of a write
    resumed = evolve(SPACE, planted, state_path=state, resume=True, **kwargs)
    assert summary(resumed) == summary(full)
    assert len(journal.read_text().splitlines()) == len(full.records)


def test_score_mappings_keep_extra_values_and_skipped_non_finite_scores_rank_last():
    def score(arch):
        if arch["b00"] == "k3":
            return {"score": math.nan if arch["b01"] == "k3" else math.inf, "note": "diverged"}
        return {"score": planted(arch), "map50": 0.5}

    result = evolve(SPACE, score, spos(population=16, topk=4, mutations=4, crossovers=4, generations=2, seed=7,
                                       on_nonfinite="skip"))
    assert all(r.arch["b00"] != "k3" for r in result.topk)
    failed = [r for r in result.records if r.info == {"note": "diverged"}]
    assert failed and all(not math.isfinite(r.score) for r in failed)
    assert {str(r.score) for r in failed} <= {"nan", "inf"}  # recorded as returned, ranked last
    assert result.topk[0].info == {"map50": 0.5}
    with pytest.raises(TypeError, match="expected a number"):
        evolve(SPACE, lambda a: "high", spos(population=4, topk=2, mutations=1, crossovers=1, generations=1))


def test_progress_reports_generation_and_best_so_far():
    events = []
    evolve(SPACE, planted, spos(population=5, topk=2, mutations=2, crossovers=2, generations=2),
           progress=events.append)
    assert [e["done"] for e in events[:5]] == [1, 2, 3, 4, 5]
    assert [e["generation"] for e in events] == [0] * 5 + [1] * 5
    assert events[-1]["best_score"] == max(e["last_score"] for e in events)


SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from tests.core.test_evolution import SPACE, planted, cost, spos
from tasknas.core import EvolutionConfig, evolve
out = []
for config in (spos(population=10, topk=3, mutations=4, crossovers=4, generations=3, seed=9),
               EvolutionConfig(strategy="predictor", budget=30, seed=9)):
    r = evolve(SPACE, planted, config, cost=cost)
    out.append([[list(map(list, x.arch)), x.score] for x in r.records])
print(json.dumps(out))
"""


def test_results_are_identical_under_different_pythonhashseed():
    root = str(Path(__file__).resolve().parents[2])
    outs = []
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", SCRIPT.format(root=root)], env=env, capture_output=True,
                              text=True, timeout=120, check=True)
        outs.append(proc.stdout)
    assert outs[0] == outs[1] == outs[2] and [len(x) for x in json.loads(outs[0])] == [30, 30]
