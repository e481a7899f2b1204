"""CP-NAS: child-parent search for 1-bit networks.

After Zhuo, Zhang, Yang, Chen, Ye, Doermann, Ji and Guo, "CP-NAS: Child-Parent Neural Architecture
Search for 1-bit CNNs" (IJCAI 2020). A *child* (1-bit weights and activations) and a *parent*
(full-precision) network with the same sampled architecture are trained together. Ops are sampled without
replacement per edge: with K ops remaining on every edge, a round of K sampled architectures tries each
op of each edge once. Each sampled architecture gets ``z = beta * (A_parent - A_child) + A_child`` from the
two validation accuracies, credited to every op it used; after each round the worst op of every edge is
removed, until one op per edge remains (K = 8: 8 + 7 + ... + 2 = 35 sampled architectures).

Our choices where the paper is silent or out of CPU reach (docs/binary.md lists them): the child and the
parent are two weight-sharing search networks (one per precision), not networks trained from scratch per
sample; one search epoch is one round, its training steps split evenly over the round's K architectures,
each scored right after its steps on the same ``cpnas.eval_batches`` held-out batches (drawn once per
epoch) with batch statistics; epochs
before ``search.arch_warmup_epochs`` train both networks on uniformly sampled paths without scoring; once
one op per edge remains, the remaining epochs train that path. The child's loss is cross-entropy plus
``kernel_lambda`` times the kernel reconstruction error ``mean (W - scale * sign(W))^2`` of its binary convs on
the path, plus (if ``center_theta > 0``) the intra-class compactness ``theta / 2 * mean ||f - c_y||^2`` of
its last features, with class centres moved halfway to each batch's class means.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .bats import stage_at
from .config import Config
from .data import ImageSet, Normalizer, batches
from .genotype import CELL_TYPES, Genotype, derive_genotype
from .networks import build_search_network
from .ops import BinaryConv2d, set_binary_mode
from .trainer import _accuracy, epoch_generator, make_optimizer, make_scheduler, path_accuracy

SAMPLING_STREAM, SCORING_STREAM = 3, 4
REMOVED = -1e3  # offset that ranks removed ops below every remaining one when deriving the genotype


def child_parent_score(parent_acc: float, child_acc: float, beta: float) -> float:
    """``z = beta * (A_parent - A_child) + A_child`` (CP-NAS, the score of a sampled architecture)."""
    return beta * (parent_acc - child_acc) + child_acc


def round_paths(remaining: dict[str, list[list[int]]], generator: torch.Generator) -> list[dict[str, list[int]]]:
    """One round of sampling without replacement: with K ops left on every edge, K paths such that each
    remaining op of every edge is used by exactly one of them (an independent random order per edge)."""
    sizes = {len(ops) for kind in CELL_TYPES for ops in remaining[kind]}
    if len(sizes) != 1:
        raise ValueError(f"every edge must hold the same number of remaining ops, got {sorted(sizes)}")
    (k,) = sizes
    orders = {kind: [[ops[i] for i in torch.randperm(k, generator=generator).tolist()] for ops in remaining[kind]]
              for kind in CELL_TYPES}
    return [{kind: [order[r] for order in orders[kind]] for kind in CELL_TYPES} for r in range(k)]


def kernel_reconstruction(modules) -> torch.Tensor:
    """Sum over the binary convs in ``modules`` (that binarize weights) of ``mean (W - scale * sign(W))^2``."""
    total = torch.zeros(())
    for module in modules:
        for conv in module.modules():
            if isinstance(conv, BinaryConv2d) and conv.mode in ("weights", "weights_activations"):
                total = total + (conv.weight - conv.binary_weight()).pow(2).mean()
    return total


class ChildParentSearch:
    """Drives :func:`tasknas.plugins.binary.trainer.run_search` for CP-NAS."""

    def __init__(self, cfg: Config, in_channels: int, num_classes: int, steps: int, held_out: ImageSet,
                 normalize: Normalizer):
        self.cfg, self.held_out, self.normalize, self.steps = cfg, held_out, normalize, steps
        search = cfg.search
        torch.manual_seed(cfg.seed)
        build = dict(in_channels=in_channels, num_classes=num_classes, partial=search.partial_channels,
                     binary_activations=True)
        self.child = build_search_network(cfg.model, search.stages[0].mode, generator=torch.Generator(), **build)
        self.parent = build_search_network(cfg.model, "real", generator=torch.Generator(), **build)
        self.op_names = self.child.op_names
        if steps < len(self.op_names):
            raise ValueError(f"CP-NAS splits an epoch's {steps} steps over up to {len(self.op_names)} sampled "
                             "architectures: raise search.steps_per_epoch / data.search_subset or lower "
                             "data.batch_size")
        self.weights = {"child": [p for _, p in self.child.weight_parameters()],
                        "parent": [p for _, p in self.parent.weight_parameters()]}
        self.opts = {name: make_optimizer(net.weight_parameters(), search.optimizer, search.lr, search.weight_decay,
                                          search.momentum) for name, net in (("child", self.child),
                                                                             ("parent", self.parent))}
        self.schedulers = {name: make_scheduler(opt, search.epochs, search.min_lr) for name, opt in self.opts.items()}
        shape = self.child.op_mask("normal").shape
        self.last_z = {kind: torch.zeros(shape, dtype=torch.float64) for kind in CELL_TYPES}
        self.centers = torch.zeros(num_classes, self.child.classifier.in_features)
        self.rounds = 0
        self.samples: list[dict] = []

    # -- checkpoint -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"child": self.child.state_dict(), "parent": self.parent.state_dict(),
                "opts": {k: o.state_dict() for k, o in self.opts.items()}, "last_z": dict(self.last_z),
                "centers": self.centers, "rounds": self.rounds, "samples": self.samples}

    def load_state_dict(self, state: dict) -> None:
        self.child.load_state_dict(state["child"])
        self.parent.load_state_dict(state["parent"])
        for name, opt in self.opts.items():
            opt.load_state_dict(state["opts"][name])
        self.last_z = {kind: state["last_z"][kind].clone() for kind in CELL_TYPES}
        self.centers = state["centers"].clone()
        self.rounds, self.samples = int(state["rounds"]), list(state["samples"])

    # -- the epoch --------------------------------------------------------------------------------------
    def _remaining(self) -> dict[str, list[list[int]]]:
        return {kind: [self.child.remaining(kind, e) for e in range(self.child.op_mask(kind).shape[0])]
                for kind in CELL_TYPES}

    def begin_epoch(self, epoch: int) -> dict:
        search = self.cfg.search
        _, stage = stage_at(search.stages, epoch)
        set_binary_mode(self.child, stage.mode)
        for scheduler in self.schedulers.values():
            scheduler.step(epoch)
        self.child.train()
        self.parent.train()
        generator = epoch_generator(self.cfg.seed, epoch, SAMPLING_STREAM)
        remaining = self._remaining()
        left = max(len(ops) for kind in CELL_TYPES for ops in remaining[kind])
        if epoch < search.arch_warmup_epochs:
            self.phase, self.paths = "warm-up", [self._uniform(remaining, generator) for _ in range(self.steps)]
        elif left > 1:
            self.phase, self.paths = "round", round_paths(remaining, generator)
        else:
            self.phase, self.paths = "final", [{kind: [ops[0] for ops in remaining[kind]] for kind in CELL_TYPES}]
        held = batches(self.held_out, self.cfg.data.batch_size, self.normalize,
                       epoch_generator(self.cfg.seed, epoch, SCORING_STREAM), None, True)
        self.eval_data = [b for _, b in zip(range(self.cfg.search.cpnas.eval_batches), held)]
        label = f"{stage.mode} {self.phase}" + (f" K={len(self.paths)}" if self.phase == "round" else "")
        return {"label": label, "mode": stage.mode, "phase": self.phase, "lr": self.opts["child"].param_groups[0]["lr"]}

    @staticmethod
    def _uniform(remaining: dict, generator: torch.Generator) -> dict[str, list[int]]:
        return {kind: [ops[int(torch.randint(len(ops), (1,), generator=generator))] for ops in remaining[kind]]
                for kind in CELL_TYPES}

    def _sample_of(self, step: int) -> tuple[int, bool]:
        """The index of the path that ``step`` trains, and whether it is that path's last step."""
        if self.phase != "round":
            return (step if self.phase == "warm-up" else 0), False
        k = len(self.paths)
        r = step * k // self.steps
        return r, (step + 1) * k // self.steps > r

    def step(self, epoch: int, step: int, batch: tuple, held: tuple) -> tuple[float, float]:
        x, y = batch
        r, last = self._sample_of(step)
        path = self.paths[r]
        cc = self.cfg.search.cpnas
        # child: cross-entropy + kernel reconstruction (+ intra-class compactness)
        features = self.child.features(x, path=path)
        logits = self.child.classifier(features)
        loss = F.cross_entropy(logits, y)
        if cc.kernel_lambda:
            loss = loss + cc.kernel_lambda * kernel_reconstruction(self.child.path_modules(path))
        if cc.center_theta:
            loss = loss + cc.center_theta / 2 * (features - self.centers[y]).pow(2).sum(1).mean()
        self._update("child", loss)
        if cc.center_theta:
            with torch.no_grad():
                for label in y.unique().tolist():
                    chosen = features.detach()[y == label]
                    self.centers[label] += 0.5 * (chosen.mean(0) - self.centers[label])
        parent_loss = F.cross_entropy(self.parent(x, path=path), y)
        self._update("parent", parent_loss)
        if not math.isfinite(parent_loss.item()):
            return parent_loss.item(), 0.0
        if last:
            self._score(r, path)
        return loss.item(), _accuracy(logits.detach(), y)

    def _update(self, name: str, loss: torch.Tensor) -> None:
        weights, optimizer = self.weights[name], self.opts[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=weights)
        torch.nn.utils.clip_grad_norm_(weights, self.cfg.search.grad_clip)
        optimizer.step()

    def _score(self, r: int, path: dict[str, list[int]]) -> None:
        parent_acc = path_accuracy(self.parent, path, self.eval_data)
        child_acc = path_accuracy(self.child, path, self.eval_data)
        z = child_parent_score(parent_acc, child_acc, self.cfg.search.cpnas.beta)
        for kind in CELL_TYPES:
            for edge, k in enumerate(path[kind]):
                self.last_z[kind][edge, k] = z
        self.samples.append({"round": self.rounds + 1, "sample": r + 1, "parent_acc": parent_acc,
                             "child_acc": child_acc, "z": z, "beta": self.cfg.search.cpnas.beta})

    def end_epoch(self, epoch: int) -> dict:
        end: dict = {}
        if self.phase == "round":
            recent = self.samples[-len(self.paths):]
            end = {"val_acc": sum(s["child_acc"] for s in recent) / len(recent),
                   "parent_val_acc": sum(s["parent_acc"] for s in recent) / len(recent),
                   "mean_z": sum(s["z"] for s in recent) / len(recent), "beta": self.cfg.search.cpnas.beta,
                   "removed": self._remove_worst()}
            self.rounds += 1
        elif self.phase == "final":
            end = {"val_acc": path_accuracy(self.child, self.paths[0], self.eval_data),
                   "parent_val_acc": path_accuracy(self.parent, self.paths[0], self.eval_data)}
        return end

    def _remove_worst(self) -> dict[str, list[str]]:
        """Remove on every edge the remaining op with the lowest z of this round (ties: the later op); an edge
        never keeps only ``none`` (a genotype needs a real op on each edge it uses): then ``none`` goes."""
        removed = {}
        zero = self.op_names.index("none") if "none" in self.op_names else None
        for kind in CELL_TYPES:
            removed[kind] = []
            for edge in range(self.child.op_mask(kind).shape[0]):
                remaining = self.child.remaining(kind, edge)
                z = self.last_z[kind][edge].tolist()
                worst = min(remaining, key=lambda k: (z[k], -k))
                if len(remaining) == 2 and zero in remaining and worst != zero:
                    worst = zero
                for net in (self.child, self.parent):
                    net.op_mask(kind)[edge, worst] = False
                removed[kind].append(self.op_names[worst])
        return removed

    # -- results ----------------------------------------------------------------------------------------
    def scores(self) -> dict[str, torch.Tensor]:
        """Last z of every op; removed ops ranked below every remaining one."""
        return {kind: torch.where(self.child.op_mask(kind), self.last_z[kind], self.last_z[kind] + REMOVED)
                for kind in CELL_TYPES}

    def genotype(self) -> Genotype:
        scores = self.scores()
        return derive_genotype(scores["normal"], scores["reduce"], self.op_names, self.child.steps)

    def summary(self) -> dict:
        return {"remaining_ops": {kind: [[self.op_names[k] for k in ops] for ops in rem]
                                  for kind, rem in self._remaining().items()},
                "last_z": {kind: [dict(zip(self.op_names, (round(v, 5) for v in row))) for row in z.tolist()]
                           for kind, z in self.last_z.items()},
                "rounds": self.rounds, "beta": self.cfg.search.cpnas.beta, "samples": self.samples}
