"""Supernet pre-training on classification (DetNAS step 1), with its own loop.

Every step takes one global batch, draws the step's paths (:class:`~tasknas.pretrain.paths.StepPaths`: one
path for uniform / FLOPs-binned SPOS sampling, ``m`` for FairNAS, the kept ones for GreedyNAS), runs each
path forward and backward on the batch with the gradients accumulated (summed, as FairNAS does), and takes
one optimizer step (a timm optimizer; a timm cosine schedule updated every step). Options off every path of
a step get no gradient, hence no momentum and no weight decay (torch's optimizers skip ``grad is None``).

Data parallel under ``torchrun``: the process group is set up here (gloo on CPU, NCCL on GPUs); every rank
takes its slice of the same global batch, every rank trains the same paths (drawn on rank 0 and broadcast),
gradients are averaged with one all-reduce, and BN running statistics are averaged at the end of each epoch,
so every rank holds the same network.

After every epoch rank 0 writes, atomically, ``pretrain.ckpt`` (weights, optimizer, sampler RNG and GreedyNAS
pool, history: plain tensors and data, read with ``torch.load(weights_only=True)``) and ``supernet.pth`` (the
transfer checkpoint, see :mod:`tasknas.pretrain.model`). ``resume=True`` continues from ``pretrain.ckpt`` with
weights bit-identical to an uninterrupted run: every epoch's order and augmentation come from generators
seeded by ``(seed, epoch)``, the schedule is a function of the step. A non-finite loss stops the run with
``FloatingPointError`` before anything of that epoch is written.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import Arch, ProgressBar, set_arch
from ..core.state import atomic_write, atomic_write_text
from .config import PretrainConfig
from .data import Images, Splits, augment, batches, load_splits, normalize
from .model import SupernetClassifier, save_pretrained
from .paths import StepPaths, batch_loss

CHECKPOINT = "pretrain.ckpt"
SUPERNET = "supernet.pth"
SUMMARY = "pretrain.json"
StepCallback = Callable[[int, int, Sequence[Arch], nn.Module], None]


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def init_distributed() -> tuple[int, int]:
    """(rank, world size); sets up the process group under torchrun (gloo on CPU, NCCL with CUDA)."""
    dist = torch.distributed
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    if _distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """A generator for one epoch and one stream of draws, the same in every process."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) >> 1)


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9):
    """timm's optimizer ``name`` (``sgd`` is Nesterov SGD); timm puts BN weights and biases in a group
    without weight decay."""
    from timm.optim import create_optimizer_v2

    try:
        return create_optimizer_v2(model, opt=name, lr=lr, weight_decay=weight_decay, momentum=momentum,
                                   filter_bias_and_bn=True)
    except (ValueError, AssertionError) as exc:
        raise ValueError(f"optimizer {name!r}: {exc}") from None


def make_scheduler(optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, min_lr: float,
                   warmup_epochs: int = 0):
    """timm's cosine schedule over ``epochs * steps_per_epoch`` updates (call ``step_update(n)``)."""
    from timm.scheduler import create_scheduler_v2

    scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=epochs, min_lr=min_lr,
                                       warmup_epochs=warmup_epochs, warmup_lr=min_lr if warmup_epochs else 1e-5,
                                       step_on_epochs=False, updates_per_epoch=steps_per_epoch)
    return scheduler


def all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Average ``tensors`` in place over the ranks (one all-reduce); nothing without a process group."""
    dist = torch.distributed
    if not tensors or not _distributed() or dist.get_world_size() == 1:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               paths: Sequence[Arch | None], label_smoothing: float = 0.0, grad_clip: float | None = None
               ) -> tuple[float, float]:
    """Forward/backward of every path on the batch (gradients summed), gradients averaged over ranks, one
    optimizer step (a path of None: the network as it is, e.g. a fixed subnet). Returns the mean loss and
    accuracy over the paths; a non-finite loss on any rank raises ``FloatingPointError`` before the step."""
    optimizer.zero_grad(set_to_none=True)
    loss_sum = correct = 0.0
    for arch in paths:
        if arch is not None:
            set_arch(model, arch)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        loss.backward()
        loss_sum += loss.item()
        correct += float((logits.argmax(1) == y).float().mean())
    finite = torch.tensor([1.0 if math.isfinite(loss_sum) else 0.0])
    if _distributed():
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)  # every rank stops together
    if finite.item() < 1:
        raise FloatingPointError(f"training loss is not finite ({loss_sum / len(paths)}): stopped before the "
                                 "optimizer step; lower train.lr or set train.grad_clip")
    params = [p for p in model.parameters() if p.grad is not None]
    all_reduce_mean([p.grad for p in params])
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss_sum / len(paths), correct / len(paths)


@torch.no_grad()
def accuracy(model: nn.Module, data: Images, batch_size: int, channels: int, limit: int | None = None) -> float:
    """Top-1 accuracy in eval mode on the first ``limit`` images (train/eval flags restored)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    correct = total = 0
    try:
        for x, y in batches(data, batch_size, channels, limit):
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    finally:
        for m, flag in flags:
            m.training = flag
    return correct / max(total, 1)


def _settings(cfg: PretrainConfig, world: int) -> dict:
    values = cfg.to_dict()
    values.pop("rank")  # the report's settings do not change training
    return {"config": json.dumps(values, sort_keys=True), "world_size": world}


def _start(path: Path, resume: bool, settings: dict, stream: TextIO | None) -> dict | None:
    if not path.is_file():
        if resume:
            print(f"no checkpoint at {path}; starting from the first epoch", file=stream)
        return None
    if not resume:
        raise FileExistsError(f"{path} holds an earlier run: add --resume to continue it, or choose another --out")
    state = torch.load(path, map_location="cpu", weights_only=True)
    differ = sorted(k for k in settings if state.get("settings", {}).get(k) != settings[k])
    if differ:
        raise ValueError(f"cannot resume {path}: it was written with other settings ({', '.join(differ)}); use the "
                         "same config, options and number of processes, or another --out")
    return state


def build_model(cfg: PretrainConfig, splits: Splits) -> SupernetClassifier:
    return SupernetClassifier(cfg.model.space, splits.num_classes, splits.channels, cfg.model.last_channels)


def _greedy_loss(model: nn.Module, splits: Splits, batch_size: int, step: int):
    """GreedyNAS's score of a path at ``step``: loss on one held-out batch (the batches taken in turn)."""
    n = max(len(splits.greedy) // batch_size, 1)
    start = (step % n) * batch_size
    gx, gy = splits.greedy.load(torch.arange(start, min(start + batch_size, len(splits.greedy))))
    gx = normalize(gx, splits.channels)

    def loss(arch: Arch) -> float:
        set_arch(model, arch)
        return batch_loss(model, gx, gy)

    return loss


def pretrain(cfg: PretrainConfig, out_dir: str | os.PathLike, resume: bool = False, stream: TextIO | None = None,
             on_step: StepCallback | None = None, splits: Splits | None = None) -> dict:
    """Pre-train (or continue) the supernet of ``cfg``; returns the summary written to ``pretrain.json``.

    ``on_step(epoch, step, paths, model)`` is called on every rank after every optimizer step.
    """
    rank, world = init_distributed()
    out = Path(out_dir)
    settings = _settings(cfg, world)
    state = _start(out / CHECKPOINT, resume, settings, stream)
    bsz = cfg.data.batch_size
    if bsz % world:
        raise ValueError(f"data.batch_size {bsz} (the global batch) must be divisible by the {world} processes")
    greedy = cfg.sampler.type == "greedy"
    splits = splits or load_splits(cfg.data, cfg.seed, cfg.sampler.greedy_images if greedy else 0)
    steps_per_epoch = len(splits.train) // bsz
    if steps_per_epoch < 1:
        raise ValueError(f"{len(splits.train)} training images make no batch of data.batch_size {bsz}")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, splits)
    paths = StepPaths(cfg.sampler, model, splits.input_shape, cfg.seed)
    optimizer = make_optimizer(model, cfg.train.optimizer, cfg.train.lr, cfg.train.weight_decay, cfg.train.momentum)
    scheduler = make_scheduler(optimizer, cfg.train.epochs, steps_per_epoch, cfg.train.min_lr, cfg.train.warmup_epochs)
    history: list[dict] = []
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        paths.load_state_dict(state["paths"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
    total = cfg.train.epochs * steps_per_epoch
    bar = ProgressBar(total, f"pretrain {cfg.sampler.type}", stream=stream) if rank == 0 else None
    model.train()
    start = time.monotonic() - (history[-1]["seconds"] if history else 0.0)
    for epoch in range(start_epoch, cfg.train.epochs):
        order = torch.randperm(len(splits.train), generator=epoch_generator(cfg.seed, epoch, 0))
        aug = epoch_generator(cfg.seed, epoch, 1 + rank)
        loss_sum = acc_sum = 0.0
        passes = 0
        for step in range(steps_per_epoch):
            index = order[step * bsz:(step + 1) * bsz][rank::world]
            x, y = splits.train.load(index)
            if cfg.data.crop_padding or cfg.data.flip:
                x = augment(x, aug, cfg.data.crop_padding, cfg.data.flip)
            x = normalize(x, splits.channels)
            done = epoch * steps_per_epoch + step
            loss_fn = _greedy_loss(model, splits, cfg.sampler.greedy_batch, done) if greedy and rank == 0 else None
            step_paths = paths.draw(done / total, loss_fn)
            loss, acc = train_step(model, optimizer, x, y, step_paths, cfg.train.label_smoothing, cfg.train.grad_clip)
            scheduler.step_update(done + 1)
            loss_sum += loss
            acc_sum += acc
            passes += len(step_paths)
            if on_step is not None:
                on_step(epoch, step, step_paths, model)
            if bar is not None:
                bar.update(done + 1, f"epoch {epoch + 1}/{cfg.train.epochs} loss {loss_sum / (step + 1):.3f} "
                                     f"acc {acc_sum / (step + 1):.3f} lr {optimizer.param_groups[0]['lr']:.4f}")
        all_reduce_mean([b for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                         for b in (m.running_mean, m.running_var)])
        history.append({"epoch": epoch + 1, "loss": loss_sum / steps_per_epoch, "acc": acc_sum / steps_per_epoch,
                        "path_passes": passes, "seconds": round(time.monotonic() - start, 3)})
        if rank == 0:
            payload = {"epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "paths": paths.state_dict(), "history": history, "settings": settings}
            atomic_write(out / CHECKPOINT, lambda tmp: torch.save(payload, tmp))
            save_pretrained(out / SUPERNET, model, {"epochs": epoch + 1, "sampler": cfg.sampler.type,
                                                     "data": cfg.to_dict()["data"], "seed": cfg.seed})
        if _distributed():
            torch.distributed.barrier()  # no rank goes on before the checkpoint is complete
    summary = {"space": cfg.model.space, "sampler": cfg.sampler.type, "epochs": cfg.train.epochs,
               "steps": total, "train_images": len(splits.train), "world_size": world,
               "path_passes": int(sum(h["path_passes"] for h in history)),
               "history": history, "supernet": str(out / SUPERNET)}
    if paths.greedy is not None:
        summary["greedy_evaluated"] = paths.greedy.evaluated
    if rank == 0:
        atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1) + "\n")
    return summary


def train_standalone(model: nn.Module, data: Images, epochs: int, batch_size: int, channels: int,
                     optimizer_name: str, lr: float, weight_decay: float, seed: int, label_smoothing: float = 0.0
                     ) -> None:
    """Train a fixed network from scratch (the ranking report's stand-alone recipe): timm optimizer, cosine
    schedule to ``lr / 1000``, batches in an order seeded by ``seed``."""
    steps = len(data) // batch_size
    if steps < 1:
        raise ValueError(f"{len(data)} images make no batch of {batch_size}")
    optimizer = make_optimizer(model, optimizer_name, lr, weight_decay)
    scheduler = make_scheduler(optimizer, epochs, steps, min_lr=lr * 1e-3)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=epoch_generator(seed, epoch, 0))
        for step in range(steps):
            x, y = data.load(order[step * batch_size:(step + 1) * batch_size])
            train_step(model, optimizer, normalize(x, channels), y, [None], label_smoothing, grad_clip=5.0)
            scheduler.step_update(epoch * steps + step + 1)
