"""Search strategies: how the next generation of candidates is proposed from the archs scored so far.

A strategy is a function ``propose(search, n) -> list[Arch]`` over values. ``search`` exposes the space, the
settings (``search.config``), the RNG, the records in scoring order, the generation, and
``search.fill(out, taken, n, make)``, which adds up to ``n`` archs drawn from ``make()`` that are new (never
scored, not already proposed) and pass every constraint, within a bounded number of draws. ``n`` is the size
of the generation, already cut to what the budget leaves. The first generation of every strategy is
``population`` uniform random archs.

* ``evolution`` — SPOS / DetNAS (Guo et al., ECCV 2020; Chen et al., NeurIPS 2019): ``mutations`` children of
  the global top-``topk`` (each key resampled with ``mutation_prob``), ``crossovers`` children of two top-k
  parents, random archs up to ``population``.
* ``regularized`` — regularized (aging) evolution (Real et al., "Regularized Evolution for Image Classifier
  Architecture Search", AAAI 2019): the population is the ``population`` most recently scored archs (the
  oldest die); each child changes one key of the best of ``tournament`` members drawn at random; ``batch``
  children per generation (1 is the paper's sequential form).
* ``predictor`` — predictor-guided evolution (NPENAS, Wei et al., 2020; BANANAS, White et al., AAAI 2021): a
  :class:`~tasknas.core.predictor.Surrogate` fitted on every scored arch ranks ``proposals`` children of the
  top-``topk`` (one or two keys changed, or a crossover) by predicted score + ``explore`` × its uncertainty;
  the ``batch`` best are scored. The surrogate is refitted from the records alone (no randomness), so a
  resumed search refits the same surrogate. Its Kendall tau is logged each generation.
* ``random`` — uniform random archs, ``population`` per generation (the baseline of Li & Talwalkar, 2019).
"""
from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from .arch import Arch
from .predictor import Surrogate, kendall_tau
from .records import sort_key, top_records
from .sampling import crossover, mutate, sample

log = logging.getLogger("tasknas.search")


def neighbour(arch: Arch, space, rng: random.Random) -> Arch:
    """``arch`` with one key (among those with more than one option) set to another of its options, uniformly."""
    movable = [i for i, key in enumerate(space) if len(space[key]) > 1]  # arch's i-th pair is space's i-th key
    if not movable:
        return arch
    i = movable[rng.randrange(len(movable))]
    key, current = tuple.__getitem__(arch, i)
    options = space[key]
    option = options[rng.randrange(len(options) - 1)]
    if option == current:  # uniform over the other options: the current one's draw goes to the last option
        option = options[-1]
    return Arch(tuple.__getitem__(arch, slice(0, i)) + ((key, option),) + tuple.__getitem__(arch, slice(i + 1, None)))


def first_generation(search: Any, n: int) -> list[Arch]:
    out: list[Arch] = []
    search.fill(out, set(), n, lambda: sample(search.space, search.rng))
    return out


def propose_evolution(search: Any, n: int) -> list[Arch]:
    cfg, rng, space = search.config, search.rng, search.space
    out: list[Arch] = []
    taken: set[Arch] = set()
    parents = [r.arch for r in top_records(search.records, cfg.topk)]
    search.fill(out, taken, cfg.mutations,
                lambda: mutate(parents[rng.randrange(len(parents))], space, rng, cfg.mutation_prob))
    search.fill(out, taken, cfg.crossovers,
                lambda: crossover(parents[rng.randrange(len(parents))], parents[rng.randrange(len(parents))], rng))
    search.fill(out, taken, cfg.population - len(out), lambda: sample(space, rng))
    return out[:n]


def propose_regularized(search: Any, n: int) -> list[Arch]:
    cfg, rng, space = search.config, search.rng, search.space
    living = search.records[-cfg.population:]  # the oldest die

    def child() -> Arch:
        drawn = rng.sample(range(len(living)), min(cfg.tournament, len(living)))
        return neighbour(min((living[i] for i in drawn), key=sort_key).arch, space, rng)

    out: list[Arch] = []
    search.fill(out, set(), n, child)
    return out


def propose_random(search: Any, n: int) -> list[Arch]:
    return first_generation(search, n)


def propose_predictor(search: Any, n: int) -> list[Arch]:
    cfg, rng, space = search.config, search.rng, search.space
    scored = [r for r in search.records if math.isfinite(r.score)]
    if len(scored) < 2:  # nothing to learn from yet
        return first_generation(search, n)
    surrogate = Surrogate(space).fit([r.arch for r in scored], [r.score for r in scored])
    _log_fit(search, surrogate, scored)
    parents = [r.arch for r in top_records(search.records, cfg.topk)]

    def child() -> Arch:
        u = rng.random()
        parent = parents[rng.randrange(len(parents))]
        if u < 0.5:
            return neighbour(parent, space, rng)
        if u < 0.8:
            return neighbour(neighbour(parent, space, rng), space, rng)
        if u < 0.95:
            return crossover(parent, parents[rng.randrange(len(parents))], rng)
        return sample(space, rng)

    pool: list[Arch] = []
    search.fill(pool, set(), max(n, cfg.proposals), child)
    mean, std = surrogate.predict(pool)
    gain = [float(m + cfg.explore * s) for m, s in zip(mean, std)]
    order = sorted(range(len(pool)), key=lambda i: (-gain[i], i))[:n]
    search.predicted.update((pool[i], float(mean[i])) for i in order)
    return [pool[i] for i in order]


def _log_fit(search: Any, surrogate: Surrogate, scored: Sequence) -> None:
    """Log the surrogate's Kendall tau on the scored archs — each predicted from all the others (leave-one-out)
    — and on the archs it chose, as predicted before they were scored (since the start or the last resume)."""
    actual = [r.score for r in scored]
    loo = kendall_tau(surrogate.leave_one_out(), actual)
    predicted = search.predicted
    last = [r for r in scored if r.arch in predicted]
    before = kendall_tau([predicted[r.arch] for r in last], [r.score for r in last])
    search.surrogate_tau = (loo, before)
    log.info("predictor generation %d: fitted on %d scored archs (lengthscale %g, noise %g); Kendall tau %.3f "
             "leave-one-out on them, %.3f on the %d archs it chose, as predicted before they were scored",
             search.generation, len(scored), surrogate.lengthscale, surrogate.noise, loo, before, len(last))


Proposer = Callable[[Any, int], "list[Arch]"]
STRATEGIES: dict[str, Proposer] = {
    "evolution": propose_evolution,
    "regularized": propose_regularized,
    "predictor": propose_predictor,
    "random": propose_random,
}
