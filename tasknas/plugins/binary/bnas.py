"""BNAS operation-space reduction by performance, as functions over values.

After Chen, Zhuo, Zhang, Zheng, Liu, Doermann and Ji, "Binarized Neural Architecture Search" (AAAI 2020):
the remaining ops of every edge are scored by the accuracy of sampled architectures that use them; the
first reduction keeps the better half, later ones remove the worst op, until one op per edge remains. The
journal version scores with an upper confidence bound, ``mean + c * sqrt(2 ln N / n)`` (N: samples scored
on the edge, n: samples that used the op), so that rarely sampled ops are not removed on little evidence.

How many architectures are sampled, on how much data, and whether alpha enters the score are not
confirmed by the paper's text; docs/binary.md lists our choices.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .darts import SearchNetwork
from .genotype import CELL_TYPES


def sample_paths(model: SearchNetwork, count: int, generator: torch.Generator) -> list[dict[str, list[int]]]:
    """``count`` single paths: on every edge one of its remaining ops, uniformly, from ``generator``."""
    remaining = {kind: [model.remaining(kind, e) for e in range(model.op_mask(kind).shape[0])] for kind in CELL_TYPES}
    paths = []
    for _ in range(count):
        path = {}
        for kind in CELL_TYPES:
            picks = torch.randint(0, 1 << 30, (len(remaining[kind]),), generator=generator).tolist()
            path[kind] = [ops[p % len(ops)] for ops, p in zip(remaining[kind], picks)]
        paths.append(path)
    return paths


@dataclass
class OpScores:
    """Per cell type, the summed accuracy and the count of sampled paths that used each op of each edge."""

    sums: dict[str, torch.Tensor]
    counts: dict[str, torch.Tensor]

    @classmethod
    def empty(cls, model: SearchNetwork) -> OpScores:
        shapes = {kind: model.op_mask(kind).shape for kind in CELL_TYPES}
        return cls({k: torch.zeros(s, dtype=torch.float64) for k, s in shapes.items()},
                   {k: torch.zeros(s, dtype=torch.long) for k, s in shapes.items()})

    def credit(self, path: Mapping[str, Sequence[int]], accuracy: float) -> None:
        """Credit ``accuracy`` to every op that ``path`` used."""
        for kind in CELL_TYPES:
            for edge, k in enumerate(path[kind]):
                self.sums[kind][edge, k] += accuracy
                self.counts[kind][edge, k] += 1

    def values(self, kind: str, edge: int, score: str = "mean", c: float = 1.0) -> dict[int, float]:
        """The score of every op of ``edge``: the mean credited accuracy, plus with ``score="ucb"`` the bonus
        ``c * sqrt(2 ln N / n)``; an op never sampled scores +inf (it is not removed unmeasured)."""
        sums, counts = self.sums[kind][edge].tolist(), self.counts[kind][edge].tolist()
        total = sum(counts)
        out = {}
        for k, (s, n) in enumerate(zip(sums, counts)):
            if n == 0:
                out[k] = math.inf
            else:
                out[k] = s / n + (c * math.sqrt(2 * math.log(total) / n) if score == "ucb" else 0.0)
        return out

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        for kind in CELL_TYPES:
            if state["sums"][kind].shape != self.sums[kind].shape:
                raise ValueError(f"op scores of shape {tuple(state['sums'][kind].shape)}, expected "
                                 f"{tuple(self.sums[kind].shape)}")
            self.sums[kind] = state["sums"][kind].clone()
            self.counts[kind] = state["counts"][kind].clone()


def ops_to_keep(remaining: Sequence[int], scores: Mapping[int, float], first: bool,
                zero: int | None = None) -> list[int]:
    """The ops of an edge that stay: the better half (rounded up) at the ``first`` reduction, else all but the
    worst one; never fewer than one. Ties keep the earlier op. Returned in op order. An edge never keeps only
    ``zero`` (the index of ``none``): a genotype needs a real op on each edge it uses, so the best other op
    stays instead."""
    if not remaining:
        raise ValueError("an edge has no remaining op")
    count = max(1, math.ceil(len(remaining) / 2) if first else len(remaining) - 1)
    ranked = sorted(remaining, key=lambda k: (-scores[k], k))
    keep = ranked[:count]
    if keep == [zero] and len(ranked) > 1:
        keep = [next(k for k in ranked if k != zero)]
    return sorted(keep)
