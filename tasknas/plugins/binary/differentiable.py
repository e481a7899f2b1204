"""The driver of the differentiable searches, BATS and BNAS: first-order bilevel steps on one search network.

Every step takes an alpha step (Adam) on a held-out batch, then a weight step on a training batch (first-order
DARTS, Liu et al., ICLR 2019); during the first ``search.arch_warmup_epochs`` epochs alpha is frozen and only
the weight step runs (PC-DARTS warms up 15 of 50 epochs). Per epoch the binary convs take the mode of the
current stage and the softmax the temperature of the schedule (BATS, Bulat et al., ECCV 2020); the weights'
learning rate follows a timm cosine schedule over all stages.

With ``search.algorithm = "bnas"`` (Chen et al., "Binarized Neural Architecture Search", AAAI 2020) the
search network has partial channels and edge normalization (PC-DARTS) as configured, and the operation
space shrinks by performance (:mod:`.bnas`): after every ``reduction.every`` alpha-training epochs,
sampled single paths score the remaining ops of every edge, the first reduction keeps the better half, later
ones remove the worst op, until one op per edge remains.
"""
from __future__ import annotations

import torch
from timm.optim import create_optimizer_v2

from .bats import stage_at
from .bnas import OpScores, ops_to_keep, sample_paths
from .config import Config
from .data import ImageSet, Normalizer, batches
from .genotype import CELL_TYPES, Genotype
from .networks import build_search_network
from .ops import set_binary_mode
from .trainer import (
    _accuracy,
    arch_step,
    binarizes_activations,
    epoch_generator,
    evaluate,
    make_optimizer,
    make_scheduler,
    path_accuracy,
    weight_step,
)

SAMPLING_STREAM, SCORING_STREAM = 3, 4


class DifferentiableSearch:
    """Drives :func:`tasknas.plugins.binary.trainer.run_search` for BATS and BNAS."""

    def __init__(self, cfg: Config, in_channels: int, num_classes: int, steps: int, held_out: ImageSet,
                 normalize: Normalizer):
        self.cfg, self.held_out, self.normalize = cfg, held_out, normalize
        search, total = cfg.search, cfg.search.epochs
        torch.manual_seed(cfg.seed)
        self.model = build_search_network(cfg.model, search.stages[0].mode, in_channels, num_classes,
                                          torch.Generator().manual_seed(cfg.seed), search.temperature.at(0, total),
                                          search.partial_channels, search.edge_norm,
                                          binarizes_activations(s.mode for s in search.stages))
        self.op_names = self.model.op_names
        self.zero = self.op_names.index("none") if "none" in self.op_names else None
        self.weights = [p for _, p in self.model.weight_parameters()]
        self.w_opt = make_optimizer(self.model.weight_parameters(), search.optimizer, search.lr, search.weight_decay,
                                    search.momentum)
        self.scheduler = make_scheduler(self.w_opt, total, search.min_lr)
        self.a_opt = create_optimizer_v2(self.model.arch_parameters(), opt="adam", lr=search.arch_lr,
                                         weight_decay=search.arch_weight_decay, betas=search.arch_betas)
        self.reduces = search.algorithm == "bnas"
        self.scores = OpScores.empty(self.model) if self.reduces else None
        self.reductions = 0
        self.alpha_steps = 0

    # -- checkpoint -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict(), "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
                 "reductions": self.reductions, "alpha_steps": self.alpha_steps}
        if self.scores is not None:
            state["scores"] = self.scores.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.reductions = int(state["reductions"])
        self.alpha_steps = int(state["alpha_steps"])
        if self.scores is not None:
            self.scores.load_state_dict(state["scores"])

    # -- the epoch --------------------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> dict:
        search = self.cfg.search
        _, stage = stage_at(search.stages, epoch)
        set_binary_mode(self.model, stage.mode)
        self.model.temperature = search.temperature.at(epoch, search.epochs)
        self.scheduler.step(epoch)
        self.model.train()
        self.train_alpha = epoch >= search.arch_warmup_epochs
        label = f"{stage.mode} T={self.model.temperature:.3g}" + ("" if self.train_alpha else " alpha frozen")
        return {"label": label, "mode": stage.mode, "temperature": self.model.temperature,
                "lr": self.w_opt.param_groups[0]["lr"], "alpha_trained": self.train_alpha}

    def step(self, epoch: int, step: int, batch: tuple, held: tuple) -> tuple[float, float]:
        (x, y), (xv, yv) = batch, held
        if self.train_alpha:
            arch_step(self.model, self.a_opt, xv, yv)
            self.alpha_steps += 1
        loss, logits = weight_step(self.model, self.w_opt, self.weights, x, y, self.cfg.search.grad_clip)
        return loss, _accuracy(logits, y)

    def end_epoch(self, epoch: int) -> dict:
        val_loss, val_acc = evaluate(self.model, self.held_out, self.cfg.data.eval_batch_size, self.normalize)
        with torch.no_grad():
            weights = self.model.arch_weights()
        end = {"val_loss": val_loss, "val_acc": val_acc,  # mean op weight over the edges of each cell type
               "op_mass": {kind: dict(zip(self.op_names, (round(v, 5) for v in w.mean(0).tolist())))
                           for kind, w in weights.items()}}
        if self.reduces and self._reduction_due(epoch):
            end["removed"] = self._reduce(epoch)
        return end

    def _reduction_due(self, epoch: int) -> bool:
        trained = epoch + 1 - self.cfg.search.arch_warmup_epochs
        largest = max(int(self.model.op_mask(kind).sum(1).max()) for kind in CELL_TYPES)
        return trained > 0 and trained % self.cfg.search.reduction.every == 0 and largest > 1

    def _reduce(self, epoch: int) -> dict[str, list[list[str]]]:
        """Score the remaining ops with sampled single paths, then shrink every edge's set (see :mod:`.bnas`)."""
        rc = self.cfg.search.reduction
        generator = epoch_generator(self.cfg.seed, epoch, SAMPLING_STREAM)
        held = batches(self.held_out, self.cfg.data.batch_size, self.normalize,
                       epoch_generator(self.cfg.seed, epoch, SCORING_STREAM), None, True)
        data = [b for _, b in zip(range(rc.eval_batches), held)]
        for path in sample_paths(self.model, rc.samples, generator):
            self.scores.credit(path, path_accuracy(self.model, path, data))
        removed = {}
        for kind in CELL_TYPES:
            mask = self.model.op_mask(kind)
            removed[kind] = []
            for edge in range(mask.shape[0]):
                remaining = self.model.remaining(kind, edge)
                keep = ops_to_keep(remaining, self.scores.values(kind, edge, rc.score, rc.ucb_c),
                                   first=self.reductions == 0 and rc.keep_half, zero=self.zero)
                mask[edge] = torch.zeros_like(mask[edge])
                mask[edge, keep] = True
                removed[kind].append([self.op_names[k] for k in remaining if k not in keep])
        self.reductions += 1
        return removed

    # -- results ----------------------------------------------------------------------------------------
    def genotype(self) -> Genotype:
        return self.model.genotype()

    def alpha_leads(self) -> dict[str, list[float | None]]:
        """Per cell type and genotype edge (node order): how far the chosen op's alpha is ahead of the best
        other remaining op (not ``none``) of that edge; None where no other op remains. Alpha, not the
        softmax weights: the lead does not depend on the temperature."""
        genotype, out = self.genotype(), {}
        for kind, alpha in self.model.alphas.items():
            rows, mask, leads = alpha.detach().tolist(), self.model.op_mask(kind).tolist(), []
            for n, (op, source) in enumerate(genotype.cell(kind)):
                edge = sum(2 + i for i in range(n // 2)) + source
                chosen = self.op_names.index(op)
                others = [rows[edge][k] for k, name in enumerate(self.op_names)
                          if k != chosen and name != "none" and mask[edge][k]]
                leads.append(round(rows[edge][chosen] - max(others), 5) if others else None)
            out[kind] = leads
        return out

    def alpha_noise(self) -> float:
        """How far noise alone moves an alpha: Adam steps each alpha by about ``arch_lr`` whatever the size of its
        gradient, so ``N`` steps of gradients without a consistent sign walk it by about ``arch_lr * sqrt(N)``.
        A genotype edge whose lead is below this is not decided by the search."""
        return round(self.cfg.search.arch_lr * self.alpha_steps ** 0.5, 5)

    def summary(self) -> dict:
        with torch.no_grad():
            op_weights = self.model.arch_weights()
            edges = self.model.edge_weights()
        out = {"op_weights": {kind: [dict(zip(self.op_names, (round(v, 5) for v in row))) for row in w.tolist()]
                              for kind, w in op_weights.items()}}
        if edges is not None:
            out["edge_weights"] = {kind: [round(v, 5) for v in w.tolist()] for kind, w in edges.items()}
        out["alpha_leads"], out["alpha_noise"] = self.alpha_leads(), self.alpha_noise()
        if self.reduces:
            out["remaining_ops"] = {kind: [[self.op_names[k] for k in self.model.remaining(kind, e)]
                                           for e in range(self.model.op_mask(kind).shape[0])] for kind in CELL_TYPES}
            out["reductions"] = self.reductions
        return out
