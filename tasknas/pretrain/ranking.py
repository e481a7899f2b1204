"""How well a supernet ranks archs: rank statistics between supernet and stand-alone accuracies.

The measures NAS evaluations use (Yu et al., "Evaluating the Search Phase of Neural Architecture Search",
ICLR 2020; Yu et al., "How to Train Your Super-Net", 2021; Ning et al., "Evaluating Efficient Performance
Estimators of Neural Architectures", NeurIPS 2021), with scipy.stats doing the statistics:

* Kendall τ-b and Spearman ρ (``scipy.stats.kendalltau`` / ``spearmanr``);
* sparse Kendall τ: τ-b after rounding both accuracies to ``resolution`` percentage points (0.1), so that
  differences below the resolution count as ties;
* precision@k: the share of the supernet's top k that are in the stand-alone top k;
* best-true-rank@k: the best stand-alone rank (1 = best) among the supernet's top k;
* regret: best stand-alone accuracy minus the stand-alone accuracy of the supernet's best arch;
* 95 % bootstrap intervals over archs (``scipy.stats.bootstrap``, paired resampling, percentile method,
  seeded).

Accuracies are fractions in [0, 1]; higher is better. Ties in a top-k cut are broken by position. A correlation
of a constant vector is undefined: NaN from the functions, None in :func:`rank_statistics`.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats


def _pair(pred: Sequence[float], true: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two equal-length vectors of >= 2 accuracies, got shapes {a.shape} and {b.shape}")
    return a, b


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _quiet(fn: Callable[[], object]) -> float:
    """A scipy correlation of constant input is undefined: NaN, without scipy's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(fn().statistic)


def kendall_tau(pred: Sequence[float], true: Sequence[float]) -> float:
    """Kendall τ-b (NaN when either vector is constant)."""
    a, b = _pair(pred, true)
    return _quiet(lambda: stats.kendalltau(a, b, variant="b"))


def spearman_rho(pred: Sequence[float], true: Sequence[float]) -> float:
    """Spearman ρ (NaN when either vector is constant)."""
    a, b = _pair(pred, true)
    return _quiet(lambda: stats.spearmanr(a, b))


def sparse_tau(pred: Sequence[float], true: Sequence[float], resolution: float = 0.1) -> float:
    """Kendall τ-b of the accuracies rounded to ``resolution`` percentage points."""
    a, b = _pair(pred, true)
    if resolution <= 0:
        return kendall_tau(a, b)
    step = resolution / 100.0
    return _quiet(lambda: stats.kendalltau(np.round(a / step), np.round(b / step), variant="b"))


def _top(values: np.ndarray, k: int) -> list[int]:
    return sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]


def precision_at_k(pred: Sequence[float], true: Sequence[float], k: int = 5) -> float:
    a, b = _pair(pred, true)
    k = min(k, len(a))
    return len(set(_top(a, k)) & set(_top(b, k))) / k


def best_true_rank_at_k(pred: Sequence[float], true: Sequence[float], k: int = 5) -> int:
    """The best stand-alone rank (1 = best, ties share the better rank) among the supernet's top ``k``."""
    a, b = _pair(pred, true)
    ranks = stats.rankdata(-b, method="min")
    return int(min(ranks[i] for i in _top(a, min(k, len(a)))))


def regret(pred: Sequence[float], true: Sequence[float]) -> float:
    """Best stand-alone accuracy minus that of the supernet's best arch (ties: the first)."""
    a, b = _pair(pred, true)
    return float(b.max() - b[_top(a, 1)[0]])


def bootstrap_interval(pred: Sequence[float], true: Sequence[float], statistic: Callable[[np.ndarray, np.ndarray],
                       float], resamples: int = 2000, seed: int = 0) -> tuple[float | None, float | None]:
    """95 % percentile-bootstrap interval of ``statistic(pred, true)`` over archs (pairs resampled)."""
    a, b = _pair(pred, true)

    def stat(x, y):
        with np.errstate(invalid="ignore", divide="ignore"):
            value = statistic(x, y)
        return 0.0 if math.isnan(value) else value  # a resample of one repeated arch: no order, no correlation

    res = stats.bootstrap((a, b), stat, paired=True, vectorized=False, n_resamples=resamples,
                          confidence_level=0.95, method="percentile", random_state=np.random.default_rng(seed))
    return _nan_to_none(res.confidence_interval.low), _nan_to_none(res.confidence_interval.high)


def rank_statistics(pred: Sequence[float], true: Sequence[float], k: int = 5, resolution: float = 0.1,
                    resamples: int = 2000, seed: int = 0) -> dict:
    """Every measure of the module doc for one pair of accuracy vectors, as plain data."""
    a, b = _pair(pred, true)
    return {"n": len(a), "kendall_tau": _nan_to_none(kendall_tau(a, b)),
            "kendall_tau_ci95": list(bootstrap_interval(a, b, kendall_tau, resamples, seed)),
            "spearman_rho": _nan_to_none(spearman_rho(a, b)),
            "spearman_rho_ci95": list(bootstrap_interval(a, b, spearman_rho, resamples, seed)),
            f"sparse_tau_{resolution:g}pt": _nan_to_none(sparse_tau(a, b, resolution)),
            f"precision_at_{k}": precision_at_k(a, b, k), f"best_true_rank_at_{k}": best_true_rank_at_k(a, b, k),
            "regret": regret(a, b)}
