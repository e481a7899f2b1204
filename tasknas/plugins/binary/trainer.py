"""The binary plugin's trainer: one search epoch loop that every algorithm drives, and the retraining loop.

Search: the training set (or a seeded subset of it) is split into a weight part and a held-out part;
:func:`run_search` runs the epochs, hands every step a training batch and a held-out batch, and lets the
algorithm's driver (:mod:`.differentiable` for BATS and BNAS, :mod:`.cpnas` for CP-NAS) decide what to do
with them: alpha and weight steps, op scoring and removal, child-parent training. The loop owns what is
common: data order, progress, per-epoch history, checkpoints, resume, and stopping at a non-finite loss.

Retraining: the discrete network of a genotype, binary or its full-precision twin (same genotype and
structure, real convs), trained with a timm optimizer and cosine schedule, then scored on the test split.

Both loops write a checkpoint after every epoch (atomically) and resume from it with results identical
to an uninterrupted run: every epoch's shuffling, augmentation and sampling come from generators seeded
by ``(seed, epoch, stream)``, and the checkpoint holds the weights, alpha, BN statistics, the remaining
ops of every edge, scores and optimizer states. A loss that is not finite stops the job at that step,
naming the epoch and step; the last checkpoint on disk is the last good epoch. Checkpoints are read with
``torch.load(weights_only=True)``: a file that holds anything else is refused in one line.
"""
from __future__ import annotations

import contextlib
import json
import math
import pickle
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch import nn

from tasknas.core import Arch, ProgressBar, save_arch
from tasknas.core.state import atomic_write, atomic_write_text

from .config import Config
from .darts import SearchNetwork
from .data import (
    DataSplits,
    ImageSet,
    Normalizer,
    batches,
    load_cifar10,
    load_fashion_mnist,
    num_batches,
    split_indices,
)
from .genotype import arch_to_genotype, genotype_to_arch
from .networks import BINARY_ACTIVATION_MODES, build_fixed_network
from .ops import BinaryConv2d

SEARCH_CHECKPOINT = "search.ckpt"
TRAIN_CHECKPOINT = "train.ckpt"


def load_data(cfg: Config) -> DataSplits:
    """The configured data set, its test split cut to ``data.test_subset`` (a seeded choice) if set."""
    data = load_fashion_mnist(cfg.data.root) if cfg.data.dataset == "fashion_mnist" else load_cifar10(cfg.data.root)
    if cfg.data.test_subset is not None:
        data = DataSplits(data.train, data.test.take(np.sort(split_indices(len(data.test), cfg.data.test_subset,
                                                                           cfg.seed))), data.num_classes)
    return data


def search_splits(cfg: Config, train: ImageSet) -> tuple[ImageSet, ImageSet]:
    """The weight part and the held-out alpha part of (a seeded subset of) the training set."""
    index = split_indices(len(train), cfg.data.search_subset, cfg.seed)
    held_out = int(round(len(index) * cfg.data.search_val_fraction))
    if held_out < 1 or held_out >= len(index):
        raise ValueError(f"search_val_fraction {cfg.data.search_val_fraction} of {len(index)} images leaves an "
                         "empty split")
    return train.take(index[held_out:]), train.take(index[:held_out])


def epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """A generator for one epoch and one stream of random draws, the same in every process."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) >> 1)


def param_groups(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights only (not on BN, PReLU, biases or learned scales: 1-D)."""
    decay, no_decay = [], []
    for _, p in named:
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(named: Iterable[tuple[str, nn.Parameter]], name: str, lr: float, weight_decay: float,
                   momentum: float) -> torch.optim.Optimizer:
    """timm's optimizer ``name`` ("sgd", "adam", "adamw", ...) over ``param_groups``."""
    try:
        return create_optimizer_v2(param_groups(named, weight_decay), opt=name, lr=lr, weight_decay=weight_decay,
                                   momentum=momentum)
    except (ValueError, AssertionError) as exc:
        raise ValueError(f"optimizer {name!r}: {exc}") from None


def make_scheduler(optimizer: torch.optim.Optimizer, epochs: int, min_lr: float, warmup_epochs: int = 0):
    """timm's cosine schedule, stepped once per epoch with the epoch index."""
    scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=epochs, min_lr=min_lr,
                                       warmup_epochs=warmup_epochs, warmup_lr=min_lr if warmup_epochs else 1e-5)
    return scheduler


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, batch_size: int, normalize: Normalizer) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy of ``model`` in eval mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for x, y in batches(data, batch_size, normalize):
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return loss_sum / len(data), correct / len(data)


def _save(path: Path, payload: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


class NonFiniteLossError(ValueError):
    """A loss that is NaN or infinite: the job stops at that step, the last good checkpoint stays on disk."""


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def load_checkpoint(path: str | Path, keys: Sequence[str] = ("config", "epoch")) -> dict:
    """A checkpoint written by this plugin, loaded with ``weights_only=True``; one clear error otherwise."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        reason = next((line.strip() for line in text.splitlines() if "unsupported" in line.lower()), _first_line(exc))
        if "global" in reason.lower():  # torch names the class or function the file asks for
            raise ValueError(f"{path}: refused: it holds more than tensors and plain data, which could run code "
                             f"when loaded ({reason[:200]})") from None
        raise ValueError(f"{path}: not a readable checkpoint (damaged or not a torch file: {reason[:200]})") from None
    except Exception as exc:  # truncated, empty or random bytes: torch raises EOFError, RuntimeError, ...
        raise ValueError(f"{path}: not a readable checkpoint (truncated, empty or not a torch file: "
                         f"{type(exc).__name__}: {_first_line(exc)[:200]})") from None
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise ValueError(f"{path}: not a checkpoint of tasknas binary (expected a dict with keys {list(keys)})")
    return state


def _start(path: Path, resume: bool, settings: dict, stream: TextIO | None) -> dict | None:
    """The checkpoint to resume from (None: start anew); errors on a stale checkpoint or changed settings."""
    if not path.is_file():
        if resume:
            print(f"--resume: nothing saved yet at {path}; starting afresh from the first epoch", file=stream)
        return None
    if not resume:
        raise FileExistsError(f"{path} holds an earlier run: add --resume to continue it, or choose another --out")
    state = load_checkpoint(path)
    saved, now = _flat({k: state.get(k) for k in settings}), _flat(settings)
    differ = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if differ:
        raise ValueError(f"cannot resume {path}: it was written with other settings ({', '.join(differ[:6])}); "
                         "use the same config and options, or another --out")
    return state


def check_finite(loss: float, what: str, epoch: int, step: int, checkpoint: Path) -> None:
    """Raise :class:`NonFiniteLossError` naming the epoch and step (1-based) when ``loss`` is NaN or infinite."""
    if not math.isfinite(loss):
        kept = (f"the last good checkpoint (epoch {epoch}) stays at {checkpoint}" if epoch > 0 and checkpoint.is_file()
                else "no checkpoint was written")
        raise NonFiniteLossError(f"{what} stopped: the loss is {loss} at epoch {epoch + 1}, step {step + 1}; {kept}; "
                                 "lower the learning rate or search/train.grad_clip")


def first_non_finite(state: object, prefix: str = "") -> str | None:
    """The key path of the first floating tensor in ``state`` (nested dicts / lists) holding NaN or inf."""
    if isinstance(state, torch.Tensor):
        return prefix or "<tensor>" if state.is_floating_point() and not bool(torch.isfinite(state).all()) else None
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, (list, tuple)) else ()
    for key, value in items:
        found = first_non_finite(value, f"{prefix}.{key}" if prefix else str(key))
        if found is not None:
            return found
    return None


def check_finite_state(state: dict, what: str, epoch: int, checkpoint: Path) -> None:
    """Before epoch ``epoch`` (0-based) is saved: stop if a weight or optimizer state became NaN or infinite
    in its last step (its loss was still finite), keeping the previous checkpoint."""
    bad = first_non_finite(state)
    if bad is not None:
        kept = (f"the last good checkpoint (epoch {epoch}) stays at {checkpoint}" if epoch > 0 and checkpoint.is_file()
                else "no checkpoint was written")
        raise NonFiniteLossError(f"{what} stopped: {bad} became non-finite in the last step of epoch {epoch + 1}; "
                                 f"{kept}; lower the learning rate")


@contextlib.contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Run BatchNorm on batch statistics without touching the running ones (scoring a single path of a
    supernet, whose running statistics belong to the mixed network); restores the BatchNorm modes afterwards."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    for m in norms:  # only BatchNorm depends on the mode in these networks (no dropout)
        m.training, m.track_running_stats = True, False
    try:
        yield
    finally:
        for m, (training, track) in zip(norms, saved):
            m.training, m.track_running_stats = training, track


@torch.no_grad()
def path_accuracy(model: SearchNetwork, path: Mapping[str, Sequence[int]],
                  data: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy of the single path ``path`` of ``model`` over the batches ``data`` (batch statistics)."""
    correct = total = 0
    with batch_statistics(model):
        for x, y in data:
            correct += int((model(x, path=path).argmax(1) == y).sum())
            total += len(y)
    return correct / total


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())


def arch_step(model: SearchNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One first-order alpha step on a held-out batch: only alpha receives gradients and changes."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward(inputs=model.arch_parameters())
    optimizer.step()
    return loss.item()


def weight_step(model: nn.Module, optimizer: torch.optim.Optimizer, weights: list[nn.Parameter], x: torch.Tensor,
                y: torch.Tensor, grad_clip: float) -> tuple[float, torch.Tensor]:
    """One step of ``weights`` (not alpha) on a training batch, gradient norm clipped; returns loss and logits."""
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward(inputs=weights)
    nn.utils.clip_grad_norm_(weights, grad_clip)
    optimizer.step()
    return loss.item(), logits.detach()


def binarizes_activations(modes: Iterable[str]) -> bool:
    """Whether any of ``modes`` binarizes activations (the DARTS op set then has no ReLU before its convs)."""
    return any(mode in BINARY_ACTIVATION_MODES for mode in modes)


def make_driver(cfg: Config, in_channels: int, num_classes: int, steps: int, held_out: ImageSet,
                normalize: Normalizer):
    """The driver of ``cfg.search.algorithm``: bats / bnas -> DifferentiableSearch, cpnas -> ChildParentSearch."""
    if cfg.search.algorithm == "cpnas":
        from .cpnas import ChildParentSearch

        return ChildParentSearch(cfg, in_channels, num_classes, steps, held_out, normalize)
    from .differentiable import DifferentiableSearch

    return DifferentiableSearch(cfg, in_channels, num_classes, steps, held_out, normalize)


def run_search(cfg: Config, out_dir: str | Path, resume: bool = False, stream: TextIO | None = None) -> dict:
    """Search (or continue searching) with ``cfg.search.algorithm`` and write ``out_dir``:
    ``genotype.arch.json``, ``search.json``, the checkpoint. Returns the summary that ``search.json`` holds."""
    out = Path(out_dir)
    config = cfg.to_dict()
    checkpoint = out / SEARCH_CHECKPOINT
    state = _start(checkpoint, resume, {"config": config}, stream)
    data = load_data(cfg)
    train, held_out = search_splits(cfg, data.train)
    normalize = Normalizer.of(train.images)
    bs, total = cfg.data.batch_size, cfg.search.epochs
    steps = min(num_batches(len(train), bs, True), num_batches(len(held_out), bs, True))
    if steps < 1:
        raise ValueError(f"the search splits ({len(train)} and {len(held_out)} images) hold no full batch of "
                         f"data.batch_size={bs}")
    steps = min(steps, cfg.search.steps_per_epoch or steps)
    driver = make_driver(cfg, data.in_channels, data.num_classes, steps, held_out, normalize)
    history, seconds, start_epoch = [], 0.0, 0
    if state is not None:
        try:
            driver.load_state_dict(state["driver"])
            history, seconds, start_epoch = state["history"], state["seconds"], state["epoch"]
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise ValueError(f"{checkpoint}: does not fit this search ({type(exc).__name__}: "
                             f"{_first_line(exc)[:200]}); move it aside or choose another --out") from None
    bar = ProgressBar(total * steps, f"search {cfg.search.algorithm}", stream=stream)
    if start_epoch:
        bar.update(start_epoch * steps, "resumed")
    for epoch in range(start_epoch, total):
        began = time.monotonic()
        info = driver.begin_epoch(epoch)
        train_it = batches(train, bs, normalize, epoch_generator(cfg.seed, epoch, 0), cfg.data.crop_padding, True)
        held_it = batches(held_out, bs, normalize, epoch_generator(cfg.seed, epoch, 1), cfg.data.crop_padding, True)
        loss_sum = acc_sum = 0.0
        for step in range(steps):
            loss, acc = driver.step(epoch, step, next(train_it), next(held_it))
            check_finite(loss, "search", epoch, step, checkpoint)
            loss_sum += loss
            acc_sum += acc
            bar.update(epoch * steps + step + 1, f"epoch {epoch + 1}/{total} {info['label']} "
                                                 f"loss {loss_sum / (step + 1):.3f} acc {acc_sum / (step + 1):.3f}")
        end = driver.end_epoch(epoch)
        genotype = driver.genotype()
        seconds += time.monotonic() - began
        history.append({"epoch": epoch + 1, **{k: v for k, v in info.items() if k != "label"},
                        "train_loss": loss_sum / steps, "train_acc": acc_sum / steps, **end,
                        "genotype": str(genotype), "seconds": time.monotonic() - began})
        driver_state = driver.state_dict()
        check_finite_state(driver_state, "search", epoch, checkpoint)
        _save(checkpoint, {"config": config, "epoch": epoch + 1, "driver": driver_state, "history": history,
                           "seconds": seconds})
        save_arch(out / "genotype.arch.json", genotype_to_arch(genotype, driver.op_names))
        atomic_write_text(out / "search.json", json.dumps(
            _search_summary(cfg, driver, history, seconds, len(train), len(held_out)), indent=1) + "\n")
    return _search_summary(cfg, driver, history, seconds, len(train), len(held_out))


def _search_summary(cfg: Config, driver, history: list, seconds: float, n_train: int, n_held_out: int) -> dict:
    genotype = driver.genotype()
    return {"algorithm": cfg.search.algorithm, "genotype": str(genotype),
            "arch": genotype_to_arch(genotype, driver.op_names).as_dict(), "epochs": len(history),
            "seconds": seconds, "weight_images": n_train, "held_out_images": n_held_out,
            "final_val_acc": history[-1].get("val_acc") if history else None, **driver.summary(),
            "history": history, "config": cfg.to_dict()}


def _param_counts(model: nn.Module) -> dict[str, int]:
    binary = sum(m.weight.numel() for m in model.modules()
                 if isinstance(m, BinaryConv2d) and m.mode in ("weights", "weights_activations"))
    return {"params": sum(p.numel() for p in model.parameters()), "binary_weights": binary}


def run_train(cfg: Config, arch: Arch, out_dir: str | Path, full_precision: bool = False, resume: bool = False,
              stream: TextIO | None = None) -> dict:
    """Train the discrete network of ``arch`` (binary, or its full-precision twin) and score it on the test
    split; writes ``out_dir``: ``result.json``, ``model.pth`` (weights), the checkpoint."""
    out = Path(out_dir)
    mode = "real" if full_precision else cfg.train.mode
    config = cfg.to_dict()
    checkpoint = out / TRAIN_CHECKPOINT
    state = _start(checkpoint, resume, {"config": config, "arch": arch.as_dict(), "mode": mode}, stream)
    data = load_data(cfg)
    train = data.train.take(split_indices(len(data.train), cfg.data.train_subset, cfg.seed))
    normalize = Normalizer.of(train.images)
    genotype = arch_to_genotype(arch, cfg.model.steps)
    torch.manual_seed(cfg.seed)
    model = build_fixed_network(cfg.model, genotype, mode, data.in_channels, data.num_classes,
                                binary_activations=binarizes_activations([cfg.train.mode]))
    tc = cfg.train
    opt = make_optimizer(model.named_parameters(), tc.optimizer, tc.lr, tc.weight_decay, tc.momentum)
    scheduler = make_scheduler(opt, tc.epochs, tc.min_lr, tc.warmup_epochs)
    history, seconds, start_epoch = [], 0.0, 0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            history, seconds, start_epoch = state["history"], state["seconds"], state["epoch"]
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            raise ValueError(f"{checkpoint}: does not fit this training ({type(exc).__name__}: "
                             f"{_first_line(exc)[:200]}); move it aside or choose another --out") from None
    bs = cfg.data.batch_size
    steps = min(num_batches(len(train), bs, True), tc.steps_per_epoch or len(train))
    if steps < 1:
        raise ValueError(f"the training set ({len(train)} images) holds no full batch of data.batch_size={bs}")
    bar = ProgressBar(tc.epochs * steps, f"train {'fp' if mode == 'real' else mode}", stream=stream)
    if start_epoch:
        bar.update(start_epoch * steps, "resumed")
    for epoch in range(start_epoch, tc.epochs):
        began = time.monotonic()
        scheduler.step(epoch)
        model.train()
        it = batches(train, bs, normalize, epoch_generator(cfg.seed, epoch, 2), cfg.data.crop_padding, True)
        loss_sum = acc_sum = 0.0
        for step in range(steps):
            x, y = next(it)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=tc.label_smoothing)
            check_finite(loss.item(), "training", epoch, step, checkpoint)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            loss_sum += loss.item()
            acc_sum += _accuracy(logits, y)
            bar.update(epoch * steps + step + 1, f"epoch {epoch + 1}/{tc.epochs} loss {loss_sum / (step + 1):.3f} "
                                                 f"acc {acc_sum / (step + 1):.3f}")
        seconds += time.monotonic() - began
        history.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": loss_sum / steps,
                        "train_acc": acc_sum / steps, "seconds": time.monotonic() - began})
        weights, opt_state = model.state_dict(), opt.state_dict()
        check_finite_state({"model": weights, "opt": opt_state}, "training", epoch, checkpoint)
        _save(checkpoint, {"config": config, "arch": arch.as_dict(), "mode": mode, "epoch": epoch + 1,
                           "model": weights, "opt": opt_state, "history": history, "seconds": seconds})
    began = time.monotonic()
    test_loss, test_acc = evaluate(model, data.test, cfg.data.eval_batch_size, normalize)
    result = {"mode": mode, "test_acc": test_acc, "test_loss": test_loss, "test_images": len(data.test),
              "train_images": len(train), "epochs": tc.epochs, "train_seconds": seconds,
              "test_seconds": time.monotonic() - began, **_param_counts(model), "genotype": str(genotype),
              "arch": arch.as_dict(), "history": history, "config": config}
    _save(out / "model.pth", {"state_dict": model.state_dict(), "arch": arch.as_dict(), "mode": mode,
                              "config": config})
    atomic_write_text(out / "result.json", json.dumps(result, indent=1) + "\n")
    return result
