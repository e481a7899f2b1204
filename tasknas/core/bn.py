"""BatchNorm re-calibration for a sampled subnet of a one-shot supernet.

Weights shared across paths leave BN running statistics that match no single path; SPOS/DetNAS
re-compute them for each candidate before evaluation. Here, for every BN on the active path:

* its running statistics are reset and its momentum set to ``None`` (a cumulative average over *all*
  calibration batches — not an EMA with momentum 0.1, which effectively keeps only the last ~10),
* the model runs train-mode forwards without grad over the calibration batches,
* when ``torch.distributed`` is initialised, the per-rank averages are combined (weighted by each
  rank's number of batches) with one all-reduce, so every rank ends with the statistics of all ranks'
  batches. This works with gloo on CPU, where SyncBatchNorm has no kernels.

BNs that the forward pass never reaches (options off the active path) are left untouched. Train/eval
flags and momenta are restored afterwards.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

Forward = Callable[[nn.Module, Any], Any]


def _default_forward(model: nn.Module, batch: Any) -> Any:
    return model(batch)


def batchnorms(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """All BN layers of ``model`` that track running statistics, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Any], forward: Forward | None = None,
                   max_batches: int | None = None) -> int:
    """Re-estimate the running statistics of the BNs on ``model``'s active path from ``batches``.

    ``forward(model, batch)`` runs one batch (default ``model(batch)``). Returns the number of batches
    used on this rank. Raises ``ValueError`` if ``batches`` yields nothing.
    """
    forward = forward or _default_forward
    bns = batchnorms(model)
    touched: dict[int, _BatchNorm] = {}
    saved_momentum = {id(m): m.momentum for _, m in bns}
    saved_training = {m: m.training for m in model.modules()}

    def reset_on_first_call(module: _BatchNorm, args: tuple) -> None:
        if id(module) not in touched:
            touched[id(module)] = module
            module.reset_running_stats()
            module.momentum = None

    hooks = [m.register_forward_pre_hook(reset_on_first_call) for _, m in bns]
    used = 0
    try:
        model.train()
        for _, m in bns:  # hosts that freeze BN in train() (mmdet's norm_eval) must not skip calibration
            m.training = True
        for batch in batches:
            if max_batches is not None and used >= max_batches:
                break
            forward(model, batch)
            used += 1
    finally:
        for h in hooks:
            h.remove()
        for _, m in bns:
            m.momentum = saved_momentum[id(m)]
        for module, flag in saved_training.items():
            module.training = flag
    if used == 0:
        raise ValueError("recalibrate_bn got no calibration batches (empty data loader?)")
    _all_reduce_stats(bns, touched)
    return used


def _all_reduce_stats(bns: list[tuple[str, _BatchNorm]], touched: dict[int, _BatchNorm]) -> None:
    """Average the statistics over ranks, each rank weighted by its number of batches per BN."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1 or not bns:
        return
    device = bns[0][1].running_mean.device
    if dist.get_backend() == "nccl" and device.type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    # One flat buffer for every BN (touched or not), in module order, so all ranks reduce the same layout.
    parts = []
    for _, m in bns:
        n = float(m.num_batches_tracked) if id(m) in touched else 0.0
        parts += [torch.tensor([n], dtype=torch.float64), m.running_mean.double().cpu() * n,
                  m.running_var.double().cpu() * n]
    flat = torch.cat(parts).to(device)
    dist.all_reduce(flat)
    flat = flat.cpu()
    offset = 0
    for _, m in bns:
        c = m.running_mean.numel()
        n = float(flat[offset])
        mean = flat[offset + 1: offset + 1 + c]
        var = flat[offset + 1 + c: offset + 1 + 2 * c]
        offset += 1 + 2 * c
        if n > 0:
            m.running_mean.copy_((mean / n).to(m.running_mean))
            m.running_var.copy_((var / n).to(m.running_var))
            m.num_batches_tracked.fill_(int(round(n)))
