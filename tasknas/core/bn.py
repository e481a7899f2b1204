"""BatchNorm re-calibration for a sampled subnet of a one-shot supernet.

Weights shared across paths leave BN running statistics that match no single path; SPOS/DetNAS
re-compute them for each candidate before evaluation. Here, for every BN on the active path:

* its running statistics are reset and its momentum set to ``None`` (a cumulative average over *all*
  calibration batches — not an EMA with momentum 0.1, which effectively keeps only the last ~10),
* it runs in train mode while the model runs forwards without grad over the calibration batches,
* when ``torch.distributed`` is initialised, the per-rank averages are combined (weighted by each
  rank's number of batches) with one all-reduce, so every rank ends with the statistics of all ranks'
  batches. This works with gloo on CPU, where SyncBatchNorm has no kernels.

Only the BN layers are switched to train mode; every other module keeps its mode (so dropout stays
off in an eval-mode model and the statistics match what evaluation will see). BNs inside options off
the active path are never touched, and a BN on the path that the forward does not reach gets its old
statistics back. If a forward raises, every BN gets its old statistics back. Momenta and modes are
restored afterwards.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .choice import modules_of

Forward = Callable[[nn.Module, Any], Any]


def _default_forward(model: nn.Module, batch: Any) -> Any:
    return model(batch)


def batchnorms(model: nn.Module, active_only: bool = False) -> list[_BatchNorm]:
    """BN layers of ``model`` that track running statistics, in module order (only the active path's
    with ``active_only``)."""
    return [m for m in modules_of(model, active_only) if isinstance(m, _BatchNorm) and m.track_running_stats]


@contextmanager
def running_stats_kept(model: nn.Module) -> Iterator[None]:
    """Inside the block, forwards of ``model`` in train mode use batch statistics and leave the running
    statistics of the active path's BNs (and their ``num_batches_tracked``) exactly as they were (momentum 0
    for the block) — e.g. to score a path by its loss on a held-out batch, as GreedyNAS does."""
    bns = batchnorms(model, active_only=True)
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, count) in zip(bns, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Any], forward: Forward | None = None,
                   max_batches: int | None = None, sync: bool = True) -> int:
    """Re-estimate the running statistics of the BNs on ``model``'s active path from ``batches``.

    ``forward(model, batch)`` runs one batch (default ``model(batch)``). Returns the number of batches
    used on this rank. Raises ``ValueError`` if ``batches`` yields nothing (statistics unchanged).
    ``sync=False`` keeps the statistics of this process only — for a search whose ranks score different
    candidates, each on the whole calibration set (the all-reduce is collective: every rank must call it).
    """
    forward = forward or _default_forward
    bns = batchnorms(model, active_only=True)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum, m.training)
             for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.training = True
    used = 0
    ok = False
    reached: set[int] = set()
    try:
        for batch in batches:
            if max_batches is not None and used >= max_batches:
                break
            forward(model, batch)
            used += 1
        ok = used > 0
    finally:
        for m, (mean, var, count, momentum, training) in zip(bns, saved):
            m.momentum, m.training = momentum, training
            if ok and int(m.num_batches_tracked) > 0:
                reached.add(id(m))
            else:  # the calibration failed, or the forward did not reach this BN
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
    if used == 0:
        raise ValueError("recalibrate_bn got no calibration batches (empty data loader?)")
    dist = torch.distributed
    if sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        _all_reduce_stats(batchnorms(model), reached)  # a non-finite value on any rank reaches every rank
    bad = next((m for m in bns if not (torch.isfinite(m.running_mean).all() and torch.isfinite(m.running_var).all())),
               None)
    if bad is not None:
        for m, (mean, var, count, _, _) in zip(bns, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
        name = next((n for n, m in model.named_modules() if m is bad), type(bad).__name__)
        raise ValueError(f"recalibrate_bn: the calibration batches gave non-finite running statistics in BN "
                         f"{name!r} (a NaN or inf in the batches, or a diverged supernet); the BN statistics were "
                         "left as they were")
    return used


def _all_reduce_stats(bns: list[_BatchNorm], touched: set[int]) -> None:
    """Average the statistics over ranks, each rank weighted by its number of batches per BN."""
    dist = torch.distributed
    if not bns:
        return
    device = bns[0].running_mean.device
    if dist.get_backend() == "nccl" and device.type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    # One flat buffer for every BN (touched or not), in module order, so all ranks reduce the same layout.
    parts = []
    for m in bns:
        n = float(m.num_batches_tracked) if id(m) in touched else 0.0
        parts += [torch.tensor([n], dtype=torch.float64), m.running_mean.double().cpu() * n,
                  m.running_var.double().cpu() * n]
    flat = torch.cat(parts).to(device)
    dist.all_reduce(flat)
    flat = flat.cpu()
    offset = 0
    for m in bns:
        c = m.running_mean.numel()
        n = float(flat[offset])
        mean = flat[offset + 1: offset + 1 + c]
        var = flat[offset + 1 + c: offset + 1 + 2 * c]
        offset += 1 + 2 * c
        if n > 0:
            m.running_mean.copy_((mean / n).to(m.running_mean))
            m.running_var.copy_((var / n).to(m.running_var))
            m.num_batches_tracked.fill_(int(round(n)))
