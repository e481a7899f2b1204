"""Hooks of supernet training in the stock mmengine Runner: ``ArchSamplerHook`` and ``TrainProgressHook``.

``ArchSamplerHook`` is single-path one-shot training.

Before every training iteration it draws an arch — uniformly, or uniformly inside a FLOPs bin as SPOS
does (``sampling='flops'``, bins from the supernet's own cost table at ``input_size``) — on rank 0,
broadcasts it so every rank runs the same path, and activates it. Options off the path take no part in
the forward pass, so they get no gradient and (with torch's optimizers, which skip parameters whose
``grad`` is ``None``; mmengine zeroes grads with ``set_to_none``) no momentum and no weight decay. Under
DDP, set ``find_unused_parameters=True``.

The sampler's RNG state is stored in the Runner's checkpoints, so a resumed training draws the same
archs as an uninterrupted one. When training ends, rank 0 writes ``<work_dir>/supernet.pth``: the model's
tensors only (plus the space as plain data), the file ``tasknas search`` and ``tasknas export`` read with
``weights_only=True``. Validation during supernet training runs one fixed arch drawn from the
seed (with the supernet's shared BN statistics): a progress signal, not a search score. A non-finite
training loss stops the training at that iteration, before its checkpoint is written.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ...core import FlopsBinnedSampler, ProgressBar, broadcast_arch, build_cost_table, sample, set_arch, space_of
from ...core.subnet import save_weights
from .task import task_of

SAMPLINGS = ("uniform", "flops")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class ArchSamplerHook(Hook):
    priority = "VERY_HIGH"

    def __init__(self, sampling: str = "uniform", seed: int = 0, input_size: tuple[int, int] = (800, 1333),
                 num_bins: int = 7, max_tries: int = 100):
        if sampling not in SAMPLINGS:
            raise ValueError(f"ArchSamplerHook sampling {sampling!r} is not one of {list(SAMPLINGS)}")
        if len(input_size) != 2 or any(int(s) < 32 for s in input_size):
            raise ValueError(f"input_size must be (height, width) of at least 32 pixels, got {tuple(input_size)!r}")
        self.sampling = sampling
        self.seed = seed
        self.input_size = tuple(int(s) for s in input_size)
        self.num_bins = num_bins
        self.max_tries = max_tries
        self.rng = random.Random(seed)
        self.sampler = None
        self.space = None
        self.current = None

    def before_run(self, runner) -> None:
        model = unwrap(runner.model)
        self.space = space_of(model)
        if not self.space:
            raise ValueError("ArchSamplerHook: the model has no Choice modules (is the backbone searchable?)")
        if self.sampling == "flops":
            device = next(model.parameters()).device
            table = build_cost_table(model, torch.zeros(1, 3, *self.input_size, device=device),
                                     forward=task_of(runner.cfg).features)
            self.sampler = FlopsBinnedSampler(self.space, table.macs, self.num_bins, self.max_tries)
            lo, hi = table.range("macs")
            runner.logger.info(f"ArchSamplerHook: FLOPs-binned sampling, {len(self.sampler.bins)} bins over "
                               f"{self.sampler.bins[0][0] / 1e9:.3f}-{self.sampler.bins[-1][1] / 1e9:.3f} GMACs "
                               f"(space spans {lo / 1e9:.3f}-{hi / 1e9:.3f}) at {self.input_size}")
        else:
            self.sampler = lambda rng: sample(self.space, rng)
        self.val_arch = sample(self.space, random.Random(self.seed + 1))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        is_src = not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
            torch.distributed.get_rank() == 0
        arch = self.sampler(self.rng) if is_src else None
        self.current = set_arch(unwrap(runner.model), broadcast_arch(arch, self.space))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Stop at the first non-finite loss, before this iteration's checkpoint is written (this hook runs first):
        the last checkpoint on disk stays the last good one, and no supernet.pth of diverged weights is saved."""
        loss = (outputs or {}).get("loss")
        if loss is None:
            return
        finite = torch.isfinite(torch.as_tensor(loss, dtype=torch.float32).detach().cpu()).all().reshape(1).float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)  # every rank stops together
        if finite.item() < 1:
            last = Path(runner.work_dir) / "last_checkpoint"
            kept = f"the last good checkpoint is {last.read_text().strip()}" if last.is_file() else \
                "no checkpoint was saved before it"
            raise FloatingPointError(f"training loss is not finite ({float(torch.as_tensor(loss).float().mean())}) "
                                     f"at iteration {runner.iter + 1}: training stopped ({kept}); lower the "
                                     "learning rate or add gradient clipping (optim_wrapper.clip_grad)")

    def before_val_epoch(self, runner) -> None:
        set_arch(unwrap(runner.model), self.val_arch)

    def after_train(self, runner) -> None:
        path = Path(runner.work_dir) / "supernet.pth"
        bad = [k for k, v in unwrap(runner.model).state_dict().items()
               if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise FloatingPointError(f"{len(bad)} supernet tensors are not finite (e.g. {bad[0]!r}): "
                                     f"{path} not written")
        if runner.rank == 0:
            save_weights(path, unwrap(runner.model), meta={"space": self.space.to_json()})
            runner.logger.info(f"ArchSamplerHook: supernet weights (plain tensors) saved to {path}")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # no rank goes on (e.g. to a search) before the file is complete

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        version, internal, gauss = self.rng.getstate()
        checkpoint.setdefault("meta", {})["tasknas_arch_sampler"] = {
            "seed": self.seed, "rng": [version, list(internal), gauss]}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get("meta", {}).get("tasknas_arch_sampler")
        if saved is not None:
            version, internal, gauss = saved["rng"]
            self.rng.setstate((version, tuple(internal), gauss))


@HOOKS.register_module()
class TrainProgressHook(Hook):
    """A progress bar with the smoothed loss, for runs whose log level hides mmengine's iteration lines."""

    priority = "LOWEST"

    def before_train(self, runner) -> None:
        self.bar = ProgressBar(runner.max_iters, "train supernet")
        self.loss = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = float(outputs["loss"].detach()) if outputs and "loss" in outputs else float("nan")
        self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
        self.bar.update(runner.iter + 1, f"loss {self.loss:.3f}")
