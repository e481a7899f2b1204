"""A surrogate of the score for predictor-guided search: a Gaussian process over one-hot archs.

NPENAS (Wei et al., "NPENAS: Neural Predictor Guided Evolution for Neural Architecture Search", 2020) and
BANANAS (White et al., AAAI 2021) fit a predictor with an uncertainty estimate on the archs scored so far
and let it choose which of many proposals are worth scoring. With a few hundred scored archs at most, a
Gaussian process is the cheapest such predictor that is exact, needs no random initialisation and gives its
uncertainty in closed form: it is fitted in milliseconds with numpy and the same records always give the
same predictor, which is what makes a resumed or multi-rank search identical to an uninterrupted one.

The kernel is the exponential of the Hamming distance between archs, ``exp(-h(a, b) / lengthscale)``:
a squared-exponential kernel on the one-hot encoding (one slot per option of every key), i.e. a product over
keys of a per-key categorical kernel, so it models interactions of every order with weights decaying in the
number of keys involved. The GP is fitted to the normal scores of the ranks of the scores (``Φ⁻¹((rank + ½) / n)``,
tied scores sharing their mean rank), not to the scores themselves: the search only needs their order, and a
few broken archs far below the rest (a diverged candidate, 7 % accuracy among 90 % ones) no longer dictate
the fit. The lengthscale and the noise level are chosen by the marginal likelihood over a small grid, the
signal variance in closed form. The settings were chosen on the NAS-Bench-Graph tables of
``benchmarks/search_strategies.py``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np

from .arch import Arch, Option

LENGTHSCALES = (0.3, 1.0, 3.0)  # times the number of keys (the Hamming distance counts keys)
NOISES = (0.01, 0.1, 0.3, 1.0)  # noise variance as a fraction of the signal variance


def one_hot(space: Mapping[str, Sequence[Option]], archs: Sequence[Arch]) -> np.ndarray:
    """``(len(archs), total number of options)`` 0/1 matrix, keys in the space's order."""
    offsets, width = {}, 0
    for key in space:
        offsets[key] = (width, {option: i for i, option in enumerate(space[key])})
        width += len(space[key])
    out = np.zeros((len(archs), width))
    for row, arch in enumerate(archs):
        for key, option in arch:
            start, index = offsets[key]
            out[row, start + index[option]] = 1.0
    return out


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (the rank correlation ``scipy.stats.kendalltau`` computes by default, ties counted as
    tau-b does); nan for fewer than 2 points or a constant side. O(n^2): for the few hundred archs of a search."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs sequences of one length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return math.nan
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), 1)
    sx, sy = sx[upper], sy[upper]
    nx, ny = np.count_nonzero(sx), np.count_nonzero(sy)
    if nx == 0 or ny == 0:
        return math.nan
    return float((sx * sy).sum() / math.sqrt(nx * ny))


def normal_scores(values: Sequence[float]) -> np.ndarray:
    """``Φ⁻¹((rank + ½) / n)`` for each value; ties share their mean rank."""
    y = np.asarray(values, dtype=float)
    ranks = np.empty(len(y))
    ranks[np.argsort(y, kind="stable")] = np.arange(len(y), dtype=float)
    _, group = np.unique(y, return_inverse=True)
    ranks = (np.bincount(group, ranks) / np.bincount(group))[group]
    inv = NormalDist().inv_cdf
    return np.array([inv((r + 0.5) / len(y)) for r in ranks])


class Surrogate:
    """A Gaussian process fitted on (arch, score) pairs of one space (see the module docstring)."""

    def __init__(self, space: Mapping[str, Sequence[Option]], lengthscales: Sequence[float] = LENGTHSCALES,
                 noises: Sequence[float] = NOISES):
        self.space = space
        self.keys = len(space)
        self.lengthscales, self.noises = tuple(x * self.keys for x in lengthscales), tuple(noises)
        self.lengthscale = self.noise = math.nan
        self._x: np.ndarray | None = None

    def _kernel(self, a: np.ndarray, b: np.ndarray, lengthscale: float) -> np.ndarray:
        return np.exp(-(self.keys - a @ b.T) / lengthscale)  # a @ b.T counts the keys two archs share

    def fit(self, archs: Sequence[Arch], scores: Sequence[float]) -> Surrogate:
        y = np.asarray(scores, dtype=float)
        if len(archs) != len(y) or not len(y) or not np.isfinite(y).all():
            raise ValueError(f"a surrogate needs one finite score per arch (at least one), got {len(archs)} archs "
                             f"and scores {list(scores)[:5]}...")
        x = one_hot(self.space, archs)
        y = normal_scores(y)
        n, best = len(y), None
        for lengthscale in self.lengthscales:
            k = self._kernel(x, x, lengthscale)
            for noise in self.noises:
                a = k + noise * np.eye(n)
                chol = np.linalg.cholesky(a)
                alpha = np.linalg.solve(a, y)
                signal = max(float(y @ alpha) / n, 1e-12)  # the signal variance that maximises the likelihood
                evidence = -0.5 * n * math.log(signal) - float(np.log(np.diag(chol)).sum())
                if best is None or evidence > best[0]:
                    best = (evidence, lengthscale, noise, a, alpha, signal)
        _, self.lengthscale, self.noise, a, self._alpha, self._signal = best
        self._inverse = np.linalg.inv(a)
        self._x = x
        self._y = y
        return self

    def predict(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation (without the noise) on the normal-score scale: the mean orders
        archs as their scores are expected to, and ``mean + explore * std`` is an upper confidence bound."""
        if self._x is None:
            raise RuntimeError("predict() before fit()")
        if not archs:
            return np.zeros(0), np.zeros(0)
        k = self._kernel(one_hot(self.space, archs), self._x, self.lengthscale)
        mean = k @ self._alpha
        var = np.clip(1.0 - ((k @ self._inverse) * k).sum(1), 0.0, None) * self._signal
        return mean, np.sqrt(var)

    def leave_one_out(self) -> np.ndarray:
        """The prediction for each fitted arch from all the others (closed form, same scale as :meth:`predict`)."""
        if self._x is None:
            raise RuntimeError("leave_one_out() before fit()")
        return self._y - self._alpha / np.diag(self._inverse)
