"""The paths of one pre-training step: uniform or FLOPs-binned (SPOS), fair (FairNAS) or greedy (GreedyNAS).

:class:`StepPaths` draws the step's paths on rank 0 from its own ``random.Random`` and gives them to every
rank (:func:`tasknas.core.broadcast_paths`), so all ranks train the same paths. Uniform and FLOPs-binned
sampling give one path per step, FairNAS ``m`` paths (every option of every choice once), GreedyNAS the
``keep`` best of ``candidates`` by loss on a held-out batch (``loss(arch)``, evaluated on rank 0 only). Its
state (the RNG and the GreedyNAS pool) is plain data for the checkpoint.
"""
from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import nn

from ..core import Arch, FlopsBinnedSampler, build_cost_table, running_stats_kept, sample, space_of
from ..core.fair import GreedyPathFilter, broadcast_paths, fair_paths
from .config import SamplerConfig


def _is_source() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class StepPaths:
    def __init__(self, cfg: SamplerConfig, model: nn.Module, input_shape: tuple[int, ...], seed: int):
        self.cfg = cfg
        self.space = space_of(model)
        self.rng = random.Random(seed)
        self.table = None
        base: Callable[[random.Random], Arch] = lambda rng: sample(self.space, rng)  # noqa: E731
        if cfg.type == "flops" or (cfg.type == "greedy" and cfg.greedy_base == "flops"):
            self.table = build_cost_table(model, torch.zeros(1, *input_shape))
            base = FlopsBinnedSampler(self.space, self.table.macs, cfg.num_bins)
        self.base = base
        self.greedy = GreedyPathFilter(self.space, base, cfg.candidates, cfg.keep, cfg.pool_size,
                                       cfg.pool_prob) if cfg.type == "greedy" else None

    def draw(self, progress: float, loss: Callable[[Arch], float] | None = None) -> list[Arch]:
        """This step's paths (rank 0's on every rank); ``loss`` is needed for greedy sampling on rank 0."""
        paths = None
        if _is_source():
            if self.cfg.type == "fair":
                paths = fair_paths(self.space, self.rng)
            elif self.cfg.type == "greedy":
                if loss is None:
                    raise ValueError("greedy sampling needs a loss(arch) on a held-out batch")
                paths = self.greedy.filter(self.rng, loss, progress)
            else:
                paths = [self.base(self.rng)]
        return broadcast_paths(paths, self.space)

    def state_dict(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss],
                "greedy": self.greedy.state_dict() if self.greedy is not None else None}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        if self.greedy is not None:
            self.greedy.load_state_dict(state["greedy"])


@torch.no_grad()
def batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy of the active path with batch statistics (train-mode BN), leaving every running
    statistic unchanged: GreedyNAS's held-out score of a path."""
    with running_stats_kept(model):
        return float(nn.functional.cross_entropy(model(x), y))
