"""Sampling archs: uniform, FLOPs-binned uniform (SPOS), mutation, crossover — all with an explicit RNG.

SPOS (Guo et al., "Single Path One-Shot NAS with Uniform Sampling", ECCV 2020) trains the supernet on
paths drawn uniformly, optionally uniform *within a FLOPs bin*: pick a bin uniformly, then draw uniform
archs until one falls in it, falling back to a plain uniform arch after a bounded number of tries.
Here the bins are derived from the space itself (see :class:`FlopsBinnedSampler`).

Every function takes a ``random.Random``; none touches global random state, and none iterates an
unordered set, so results are identical across processes and ``PYTHONHASHSEED`` values.
:func:`broadcast_arch` makes every rank of a ``torch.distributed`` job use rank 0's arch.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

import torch

from .arch import Arch, Option, make_arch


def _space_items(space: Mapping[str, Sequence[Option]]) -> list[tuple[str, tuple[Option, ...]]]:
    return [(key, tuple(space[key])) for key in sorted(space)]


def sample(space: Mapping[str, Sequence[Option]], rng: random.Random) -> Arch:
    """A uniformly random arch of ``space``."""
    return Arch((key, options[rng.randrange(len(options))]) for key, options in _space_items(space))


def mutate(arch: Arch, space: Mapping[str, Sequence[Option]], rng: random.Random, prob: float = 0.1) -> Arch:
    """Resample each key independently with probability ``prob`` (uniform over all its options, as SPOS)."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"mutation prob must be in [0, 1], got {prob!r}")
    current = arch.as_dict()
    out = []
    for key, options in _space_items(space):
        option = current[key]
        if rng.random() < prob:
            option = options[rng.randrange(len(options))]
        out.append((key, option))
    return Arch(out)


def crossover(a: Arch, b: Arch, rng: random.Random) -> Arch:
    """Each key taken from parent ``a`` or ``b`` with probability 1/2."""
    da, db = a.as_dict(), b.as_dict()
    if sorted(da) != sorted(db):
        raise ValueError("crossover parents come from different spaces")
    return Arch((key, da[key] if rng.random() < 0.5 else db[key]) for key in sorted(da))


class FlopsBinnedSampler:
    """Uniform sampling inside FLOPs bins, as SPOS trains its supernet.

    ``cost`` maps an arch to its cost (e.g. ``table.macs``). The bins split ``[lo, hi]`` into
    ``num_bins`` equal-width intervals, where ``lo``/``hi`` are the ``coverage`` central quantiles of the
    cost of ``pilot`` uniform archs drawn with a fixed seed — the space's own reachable FLOPs range. (The
    exact min/max of a large space are reached by a vanishing fraction of archs, so bins at those
    extremes would almost always fall back.) Each call picks a bin uniformly, draws uniform archs until
    one lands in it, and after ``max_tries`` misses returns the last uniform draw; ``fallbacks`` counts those.
    """

    def __init__(self, space: Mapping[str, Sequence[Option]], cost: Callable[[Arch], float], num_bins: int = 7,
                 max_tries: int = 100, coverage: float = 0.98, pilot: int = 2000):
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1, got {num_bins!r}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries!r}")
        if not 0.0 < coverage <= 1.0:
            raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
        self.space = space
        self.cost = cost
        self.max_tries = max_tries
        pilot_rng = random.Random(0)
        costs = sorted(cost(sample(space, pilot_rng)) for _ in range(max(pilot, 2)))
        tail = (1.0 - coverage) / 2
        lo = costs[int(tail * (len(costs) - 1))]
        hi = costs[int(round((1.0 - tail) * (len(costs) - 1)))]
        if hi <= lo:  # every arch costs the same: one bin
            num_bins, hi = 1, lo + 1
        step = (hi - lo) / num_bins
        self.bins = [(lo + i * step, lo + (i + 1) * step) for i in range(num_bins)]
        self.fallbacks = 0
        self.draws = 0

    def __call__(self, rng: random.Random) -> Arch:
        self.draws += 1
        index = rng.randrange(len(self.bins))
        lo, hi = self.bins[index]
        last = index == len(self.bins) - 1
        for _ in range(self.max_tries):
            arch = sample(self.space, rng)
            c = self.cost(arch)
            if lo <= c < hi or (last and c == hi):
                return arch
        self.fallbacks += 1
        return arch


def sample_like(space: Mapping[str, Sequence[Option]], cost: Callable[[Arch], float], target: Arch,
                rng: random.Random, tolerance: float = 0.02, tries: int = 20000) -> Arch | None:
    """A uniformly drawn arch other than ``target`` whose cost is within ``tolerance`` (relative) of
    ``target``'s — the random baseline of equal cost; None if ``tries`` draws find none."""
    goal = cost(target)
    for _ in range(tries):
        arch = sample(space, rng)
        if arch != target and abs(cost(arch) - goal) <= tolerance * abs(goal):
            return arch
    return None


def collective_device() -> torch.device:
    """Where tensors of a collective call live in the initialised process group: the current CUDA device for
    NCCL, the CPU otherwise (gloo)."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_arch(arch: Arch | None, space: Mapping[str, Sequence[Option]], src: int = 0) -> Arch:
    """Return rank ``src``'s arch on every rank of an initialised ``torch.distributed`` job.

    Without an initialised process group it returns ``arch`` unchanged. The arch travels as a tensor
    of option indices (on the current CUDA device for NCCL, on CPU otherwise).
    """
    items = _space_items(space)
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        if arch is None:
            raise ValueError("broadcast_arch needs an arch when torch.distributed is not initialised")
        return make_arch(space, arch)
    device = collective_device()
    codes = torch.zeros(len(items), dtype=torch.long, device=device)
    if dist.get_rank() == src:
        if arch is None:
            raise ValueError(f"rank {src} must provide the arch to broadcast")
        current = make_arch(space, arch).as_dict()
        codes = torch.tensor([options.index(current[key]) for key, options in items], dtype=torch.long,
                             device=device)
    dist.broadcast(codes, src=src)
    return Arch((key, options[int(i)]) for (key, options), i in zip(items, codes.tolist()))
