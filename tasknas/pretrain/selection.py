"""Which archs a ranking report scores: distinct archs stratified over the space's FLOPs range.

A pool of uniformly drawn distinct archs (``pool`` draws, seeded) is cut into ``n`` equal-width cost bins
between its cheapest and its most expensive arch. Every non-empty bin gives one arch (drawn uniformly among
its pool members); slots left by empty bins (the extremes of a large space are rare) are filled one at a
time from the non-empty bins in bin order, round-robin, each time with an unused member. So the archs span
the reachable cost range instead of clustering around its middle, as uniform draws do.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from ..core import Arch, sample
from ..core.arch import Option


def cost_bins(costs: Sequence[float], n: int) -> list[int]:
    """The bin (0..n-1) of each cost among ``n`` equal-width bins over [min, max] (max in the last bin)."""
    lo, hi = min(costs), max(costs)
    if hi <= lo:
        return [0] * len(costs)
    return [min(int((c - lo) / (hi - lo) * n), n - 1) for c in costs]


def stratified_archs(space: Mapping[str, Sequence[Option]], cost: Callable[[Arch], float], n: int,
                     rng: random.Random, pool: int | None = None) -> list[Arch]:
    """``n`` distinct archs spread over the cost range (see the module doc), in cost order."""
    if n < 1:
        raise ValueError(f"the number of archs must be >= 1, got {n!r}")
    draws = pool if pool is not None else max(50 * n, 1000)
    found: dict[str, Arch] = {}
    for _ in range(draws):
        arch = sample(space, rng)
        found.setdefault(arch.to_json(indent=None), arch)
    archs = list(found.values())
    if len(archs) < n:
        raise ValueError(f"the space yields only {len(archs)} distinct archs in {draws} draws; {n} were asked for")
    costs = [cost(a) for a in archs]
    members: list[list[int]] = [[] for _ in range(n)]
    for i, b in enumerate(cost_bins(costs, n)):
        members[b].append(i)
    chosen: list[int] = []
    for bucket in members:
        if bucket:
            chosen.append(bucket.pop(rng.randrange(len(bucket))))
    while len(chosen) < n:  # bounded: the pool holds at least n archs
        for bucket in members:
            if bucket and len(chosen) < n:
                chosen.append(bucket.pop(rng.randrange(len(bucket))))
    chosen.sort(key=lambda i: (costs[i], archs[i].to_json(indent=None)))
    return [archs[i] for i in chosen]
