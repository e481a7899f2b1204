"""Scored candidates and what a search returns: records, the global top-k and the Pareto front.

A non-finite score never wins: records rank by score (non-finite last), ties by scoring order.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .arch import Arch


@dataclass
class Record:
    """One scored candidate. ``index`` is its position in scoring order."""

    arch: Arch
    score: float
    generation: int
    index: int
    cost: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchResult:
    best: Arch
    best_score: float
    topk: list[Record]
    records: list[Record]
    pareto: list[Record]
    generations: int  # generations completed


def sort_key(record: Record) -> tuple[float, int]:
    score = record.score if math.isfinite(record.score) else -math.inf
    return (-score, record.index)


def top_records(records: Sequence[Record], k: int) -> list[Record]:
    """The ``k`` best records, best first; ties broken by scoring order."""
    return sorted(records, key=sort_key)[:k]


def pareto_front(records: Sequence[Record]) -> list[Record]:
    """Records not dominated in (higher score, lower cost), by increasing cost. Records without cost are skipped."""
    costed = sorted((r for r in records if r.cost is not None and math.isfinite(r.score)),
                    key=lambda r: (r.cost, -r.score, r.index))
    front, best = [], -math.inf
    for r in costed:
        if r.score > best:
            front.append(r)
            best = r.score
    return front
