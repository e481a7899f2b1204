"""Hooks of supernet training in the stock mmengine Runner: ``ArchSamplerHook`` and ``TrainProgressHook``.

``ArchSamplerHook`` is one-shot supernet training with path sampling.

Before every training iteration it draws the iteration's paths on rank 0 and broadcasts them, so every rank
runs the same paths:

* ``sampling='uniform'`` / ``'flops'`` (SPOS): one path, uniform, or uniform inside a FLOPs bin (bins from the
  supernet's own cost table at ``input_size``); the stock ``train_step`` trains it;
* ``sampling='fair'`` (FairNAS strict fairness, :func:`tasknas.core.fair.fair_paths`): ``m`` paths that use
  every option of every choice exactly once;
* ``sampling='greedy'`` (GreedyNAS, :class:`tasknas.core.fair.GreedyPathFilter`): ``candidates`` paths drawn
  (from the pool of good paths with a probability ramped over training, else from the base sampler), each
  scored by the supernet's loss on held-out batches (``greedy_data``: the first ``greedy_batches`` batches of
  the val loader, or of the train loader; train-mode BN with the running statistics left untouched), the
  ``keep`` best trained and kept in the pool. Under ``torchrun`` every rank scores the same candidates on its
  own held-out batches and the losses are averaged, so every rank keeps the same paths (and the same pool).

For ``fair`` and ``greedy`` the hook replaces the model's ``train_step`` for the run with a multi-path step:
the batch is preprocessed once, every path runs forward and backward on it with the gradients summed (as
FairNAS does), then one optimizer step (``optim_wrapper.step``: gradient clipping applies to the sum). The
logged losses are the mean over the paths. ``optim_wrapper.accumulative_counts`` must stay 1 (the hook
already accumulates), which the hook checks. Options off the path take no part in
the forward pass, so they get no gradient and (with torch's optimizers, which skip parameters whose
``grad`` is ``None``; mmengine zeroes grads with ``set_to_none``) no momentum and no weight decay. Under
DDP, set ``find_unused_parameters=True``.

The sampler's RNG state (and the GreedyNAS pool) is stored in the Runner's checkpoints, so a resumed training
draws the same archs as an uninterrupted one. When training ends, rank 0 writes ``<work_dir>/supernet.pth``: the model's
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

from ...core import (
    FlopsBinnedSampler,
    ProgressBar,
    broadcast_arch,
    build_cost_table,
    running_stats_kept,
    sample,
    set_arch,
    space_of,
)
from ...core.fair import GreedyPathFilter, broadcast_paths, fair_paths
from ...core.sampling import collective_device
from ...core.subnet import save_weights
from .task import task_of

SAMPLINGS = ("uniform", "flops", "fair", "greedy")
GREEDY_DATA = ("val", "train")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class ArchSamplerHook(Hook):
    priority = "VERY_HIGH"

    def __init__(self, sampling: str = "uniform", seed: int = 0, input_size: tuple[int, int] = (800, 1333),
                 num_bins: int = 7, max_tries: int = 100, candidates: int = 10, keep: int = 5, pool_size: int = 1000,
                 pool_prob: tuple[float, float] = (0.0, 0.8), greedy_base: str = "uniform", greedy_data: str = "val",
                 greedy_batches: int = 1):
        if sampling not in SAMPLINGS:
            raise ValueError(f"ArchSamplerHook sampling {sampling!r} is not one of {list(SAMPLINGS)}")
        if len(input_size) != 2 or any(int(s) < 32 for s in input_size):
            raise ValueError(f"input_size must be (height, width) of at least 32 pixels, got {tuple(input_size)!r}")
        if greedy_base not in ("uniform", "flops"):
            raise ValueError(f"ArchSamplerHook greedy_base {greedy_base!r} is not one of ['uniform', 'flops']")
        if greedy_data not in GREEDY_DATA:
            raise ValueError(f"ArchSamplerHook greedy_data {greedy_data!r} is not one of {list(GREEDY_DATA)}")
        if not isinstance(greedy_batches, int) or greedy_batches < 1:
            raise ValueError(f"ArchSamplerHook greedy_batches must be an integer >= 1, got {greedy_batches!r}")
        GreedyPathFilter({}, None, candidates, keep, pool_size, tuple(pool_prob))  # checks these settings
        self.sampling = sampling
        self.seed = seed
        self.input_size = tuple(int(s) for s in input_size)
        self.num_bins = num_bins
        self.max_tries = max_tries
        self.greedy_settings = dict(candidates=candidates, keep=keep, pool_size=pool_size, pool_prob=tuple(pool_prob))
        self.greedy_base = greedy_base
        self.greedy_data = greedy_data
        self.greedy_batches = greedy_batches
        self.rng = random.Random(seed)
        self.sampler = None
        self.greedy = None
        self.held_out: list = []
        self.space = None
        self.current = None
        self.paths: list = []

    def before_run(self, runner) -> None:
        model = unwrap(runner.model)
        self.space = space_of(model)
        if not self.space:
            raise ValueError("ArchSamplerHook: the model has no Choice modules (is the backbone searchable?)")
        if self.sampling == "flops" or (self.sampling == "greedy" and self.greedy_base == "flops"):
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
        if self.sampling in ("fair", "greedy"):
            counts = getattr(runner.optim_wrapper, "_accumulative_counts", 1)
            if counts != 1:
                raise ValueError(f"ArchSamplerHook sampling={self.sampling!r} accumulates the gradients of its paths "
                                 f"itself: set optim_wrapper.accumulative_counts to 1, got {counts!r}")
            runner.model.train_step = self._multi_path_step(runner.model)  # an instance attribute, removed after_train
        if self.sampling == "fair":
            m = max(len(options) for options in self.space.values())
            runner.logger.info(f"ArchSamplerHook: FairNAS strict fairness, {m} paths per iteration (every option "
                               "of every choice once), gradients summed, one optimizer step")
        if self.sampling == "greedy":
            self.greedy = GreedyPathFilter(self.space, self.sampler, **self.greedy_settings)
            runner.logger.info(f"ArchSamplerHook: GreedyNAS, the {self.greedy.keep} best of "
                               f"{self.greedy.candidates} paths per iteration by loss on {self.greedy_batches} "
                               f"held-out {self.greedy_data} batch(es), pool of {self.greedy.pool_size}")

    def before_train(self, runner) -> None:
        if self.sampling != "greedy":
            return
        if self.greedy_data == "val":
            loop = getattr(runner, "_val_loop", None)
            if loop is None:
                raise ValueError("ArchSamplerHook greedy_data='val' needs a val_dataloader, val_cfg and "
                                 "val_evaluator in the config; or set greedy_data='train'")
            loader = runner.val_dataloader
        else:
            loader = runner.train_dataloader
        batches = iter(loader)
        self.held_out = []
        for _ in range(self.greedy_batches):
            try:
                self.held_out.append(next(batches))
            except StopIteration:
                break
        if not self.held_out:
            raise ValueError(f"ArchSamplerHook greedy_data={self.greedy_data!r}: the loader yields no batch")

    def _multi_path_step(self, model: torch.nn.Module):
        """A ``train_step`` that trains every path of ``self.paths`` on the batch (gradients summed), then
        takes one optimizer step."""
        inner = unwrap(model)

        def train_step(data, optim_wrapper):
            with optim_wrapper.optim_context(model):
                data = inner.data_preprocessor(data, True)
            totals: dict = {}
            for arch in self.paths:
                set_arch(inner, arch)
                with optim_wrapper.optim_context(model):
                    losses = model._run_forward(data, mode="loss")
                loss, log_vars = inner.parse_losses(losses)
                optim_wrapper.backward(loss)
                for key, value in log_vars.items():
                    totals[key] = totals.get(key, 0.0) + value
            optim_wrapper.step()
            optim_wrapper.zero_grad()
            return {key: value / len(self.paths) for key, value in totals.items()}

        return train_step

    @torch.no_grad()
    def _held_out_loss(self, model: torch.nn.Module, arch, step: int) -> float:
        """The supernet's loss of ``arch`` on the step's held-out batch (taken in turn), with batch statistics
        and every BN running statistic left as it was (momentum 0 for the call)."""
        set_arch(model, arch)
        with running_stats_kept(model):
            data = model.data_preprocessor(self.held_out[step % len(self.held_out)], True)
            loss, _ = model.parse_losses(model._run_forward(data, mode="loss"))
        return float(loss)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        dist = torch.distributed
        distributed = dist.is_available() and dist.is_initialized()
        is_src = not distributed or dist.get_rank() == 0
        model = unwrap(runner.model)
        if self.sampling == "fair":
            self.paths = broadcast_paths(fair_paths(self.space, self.rng) if is_src else None, self.space)
        elif self.sampling == "greedy":
            progress = runner.iter / max(runner.max_iters, 1)
            candidates = broadcast_paths(self.greedy.draw(self.rng, progress) if is_src else None, self.space)
            losses = torch.tensor([self._held_out_loss(model, arch, runner.iter) for arch in candidates],
                                  dtype=torch.float64)
            if distributed:
                losses = losses.to(collective_device())
                dist.all_reduce(losses)
                losses = losses.cpu() / dist.get_world_size()
            self.paths = self.greedy.keep_best(candidates, losses.tolist())
        else:
            self.paths = [broadcast_arch(self.sampler(self.rng) if is_src else None, self.space)]
        self.current = set_arch(model, self.paths[0])

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
        runner.model.__dict__.pop("train_step", None)  # the multi-path step of fair / greedy sampling
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
            "seed": self.seed, "rng": [version, list(internal), gauss],
            "greedy": self.greedy.state_dict() if self.greedy is not None else None}

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get("meta", {}).get("tasknas_arch_sampler")
        if saved is not None:
            version, internal, gauss = saved["rng"]
            self.rng.setstate((version, tuple(internal), gauss))
            if self.greedy is not None and saved.get("greedy") is not None:
                self.greedy.load_state_dict(saved["greedy"])


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
