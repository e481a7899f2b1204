"""Path samplers against ranking decay: FairNAS strict fairness and GreedyNAS-style path filtering.

* FairNAS (Chu et al., "FairNAS: Rethinking Evaluation Fairness of Weight Sharing Neural Architecture Search",
  ICCV 2021), *strict fairness*: every training step draws ``m`` paths (``m`` = the number of options of a
  choice) that together use every option of every choice exactly once — for each choice an independent
  random permutation of its options, path ``i`` taking the ``i``-th entry — trains all of them on the same
  batch with their gradients accumulated, then takes one optimizer step. So every option gets the same
  number of updates at every step, not only in expectation. A choice with fewer than ``m`` options uses
  each of its options once in a permutation and fills the remaining paths with uniform draws (then each of
  its options is used at least once per step; exactly once only when all choices have ``m`` options, as in
  the DetNAS spaces).
* GreedyNAS (You et al., "GreedyNAS: Towards Fast One-Shot NAS with Greedy Supernet", CVPR 2020):
  :class:`GreedyPathFilter` draws ``candidates`` paths — each from a pool of good paths with a probability
  that grows linearly over training (exploitation), else from a base sampler (exploration) — scores each
  by the supernet's loss on a small held-out batch, keeps the ``keep`` best for training and puts them in
  the pool (bounded, the best by their latest loss).

Both are functions over values with an explicit ``random.Random``; :func:`broadcast_paths` gives every
rank of a ``torch.distributed`` job rank 0's paths.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from .arch import Arch, Option, make_arch
from .sampling import broadcast_arch, collective_device, sample


def fair_paths(space: Mapping[str, Sequence[Option]], rng: random.Random) -> list[Arch]:
    """``m`` paths that together use every option of every choice (exactly once where it has ``m`` options)."""
    keys = sorted(space)
    if not keys:
        raise ValueError("fair_paths needs a space with at least one choice")
    m = max(len(space[key]) for key in keys)
    columns = {}
    for key in keys:
        options = list(space[key])
        rng.shuffle(options)
        options += [options[rng.randrange(len(options))] for _ in range(m - len(options))]
        columns[key] = options
    return [Arch((key, columns[key][i]) for key in keys) for i in range(m)]


def _arch_text(arch: Arch) -> str:
    return arch.to_json(indent=None)


class GreedyPathFilter:
    """GreedyNAS-style multi-path sampling with rejection and a pool of good paths.

    ``filter(rng, loss, progress)`` draws ``candidates`` distinct paths: each comes from the pool with
    probability ``pool_prob[0] + (pool_prob[1] - pool_prob[0]) * progress`` (``progress`` in [0, 1] is the
    fraction of training done; GreedyNAS ramps it from 0 to 0.8) while the pool is non-empty, else from
    ``base(rng)``. ``loss(arch)`` scores each (lower is better); the ``keep`` lowest are returned (ties by
    arch, so the result never depends on hashing) and stored in the pool with their loss; the pool keeps
    the ``pool_size`` lowest. Every draw loop is bounded: a step that cannot find ``candidates`` distinct
    paths in ``10 * candidates`` draws scores the distinct ones it has.
    """

    def __init__(self, space: Mapping[str, Sequence[Option]], base: Callable[[random.Random], Arch] | None = None,
                 candidates: int = 10, keep: int = 5, pool_size: int = 1000,
                 pool_prob: tuple[float, float] = (0.0, 0.8)):
        if candidates < 1 or not 1 <= keep <= candidates:
            raise ValueError(f"GreedyPathFilter needs candidates >= 1 and 1 <= keep <= candidates, got "
                             f"candidates={candidates!r}, keep={keep!r}")
        if pool_size < keep:
            raise ValueError(f"pool_size must be >= keep ({keep}), got {pool_size!r}")
        if len(pool_prob) != 2 or not all(0.0 <= p <= 1.0 for p in pool_prob):
            raise ValueError(f"pool_prob must be (start, end) probabilities in [0, 1], got {pool_prob!r}")
        self.space = space
        self.base = base or (lambda rng: sample(space, rng))
        self.candidates = candidates
        self.keep = keep
        self.pool_size = pool_size
        self.pool_prob = (float(pool_prob[0]), float(pool_prob[1]))
        self.pool: dict[str, tuple[float, Arch]] = {}  # arch JSON -> (latest loss, arch)
        self.evaluated = 0

    def pool_probability(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        return self.pool_prob[0] + (self.pool_prob[1] - self.pool_prob[0]) * progress

    def draw(self, rng: random.Random, progress: float) -> list[Arch]:
        """The step's distinct candidate paths (before scoring)."""
        q = self.pool_probability(progress)
        pooled = sorted(self.pool)
        found: dict[str, Arch] = {}
        for _ in range(10 * self.candidates):
            if len(found) == self.candidates:
                break
            if pooled and rng.random() < q:
                arch = self.pool[pooled[rng.randrange(len(pooled))]][1]
            else:
                arch = self.base(rng)
            found.setdefault(_arch_text(arch), arch)
        return list(found.values())

    def filter(self, rng: random.Random, loss: Callable[[Arch], float], progress: float) -> list[Arch]:
        """Draw, score with ``loss``, keep the best ``keep`` (fewer only if fewer distinct paths were found)."""
        archs = self.draw(rng, progress)
        return self.keep_best(archs, [float(loss(arch)) for arch in archs])

    def keep_best(self, archs: Sequence[Arch], losses: Sequence[float]) -> list[Arch]:
        """The ``keep`` archs of lowest loss (ties by arch), stored in the pool: the second half of
        :meth:`filter`, for callers that score the drawn paths themselves (e.g. on every rank, then averaged)."""
        if len(archs) != len(losses):
            raise ValueError(f"keep_best needs one loss per arch, got {len(archs)} archs and {len(losses)} losses")
        self.evaluated += len(archs)
        scored = sorted(((float(value), _arch_text(arch), arch) for arch, value in zip(archs, losses)),
                        key=lambda item: (item[0], item[1]))
        kept = scored[:self.keep]
        for value, text, arch in kept:
            self.pool[text] = (value, arch)
        if len(self.pool) > self.pool_size:
            ranked = sorted(self.pool.items(), key=lambda item: (item[1][0], item[0]))
            self.pool = dict(ranked[:self.pool_size])
        return [arch for _, _, arch in kept]

    def state_dict(self) -> dict:
        """Plain data (loads with ``torch.load(weights_only=True)``)."""
        return {"pool": [[text, value] for text, (value, _) in sorted(self.pool.items())],
                "evaluated": self.evaluated}

    def load_state_dict(self, state: Mapping) -> None:
        pool = {}
        for text, value in state["pool"]:
            arch = Arch.from_json(text, self.space)
            pool[_arch_text(arch)] = (float(value), arch)
        self.pool = pool
        self.evaluated = int(state["evaluated"])


def broadcast_paths(paths: Sequence[Arch] | None, space: Mapping[str, Sequence[Option]], src: int = 0) -> list[Arch]:
    """Rank ``src``'s paths (their number included) on every rank; unchanged without a process group."""
    import torch

    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        if paths is None:
            raise ValueError("broadcast_paths needs the paths when torch.distributed is not initialised")
        return [make_arch(space, arch) for arch in paths]
    device = collective_device()
    count = torch.tensor([0 if paths is None else len(paths)], dtype=torch.long, device=device)
    dist.broadcast(count, src=src)
    return [broadcast_arch(None if paths is None else paths[i], space, src=src) for i in range(int(count))]
