"""One search candidate against its bare forward passes, for the OpenMMLab benchmarks (detection, segmentation).

A is one candidate exactly as ``tasknas search`` scores it (the layer's ``Scorer``: activate the arch,
recalibrate BN on the calibration images, ``test_step`` over the evaluation split, the search metric). B is the
same model's bare passes for that arch: train-mode no-grad forwards over the same calibration batches and
``test_step`` over the same evaluation batches, no metric. B runs right after A on the statistics A recalibrated
(BN momentum 0), so both run identical networks and their post-processing does identical work.
"""
from __future__ import annotations

import random

import torch
from _timing import Timings, seconds

from tasknas.core import choices_of, sample, space_of
from tasknas.plugins.openmmlab.scoring import Scorer, calibration_batches, calibration_forward


def candidate_vs_bare(cfg, model: torch.nn.Module, calib_images: int, rounds: int,
                      seed: int) -> tuple[Timings, Scorer, list]:
    """(A/B timings over ``rounds`` archs drawn with ``seed``, the scorer, its evaluation batches)."""
    calibration = calibration_batches(cfg, calib_images)
    scorer = Scorer(cfg, model, calibration)
    evaluation = list(scorer.loader)
    choices = choices_of(model)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    rng = random.Random(seed)
    archs = [sample(space_of(model), rng) for _ in range(rounds + 1)]

    @torch.no_grad()
    def bare(arch) -> None:
        chosen = arch.as_dict()
        for choice in choices:
            choice.active = chosen[choice.key]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.momentum = 0.0
        model.train()
        for batch in calibration:
            calibration_forward(model, batch)
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.eval()
        for batch in evaluation:
            model.test_step(batch)

    ta, tb = [], []
    scorer(archs[0]), bare(archs[0])  # warm-up
    for arch in archs[1:]:  # B must follow A: it runs on the statistics A recalibrated
        ta.append(seconds(lambda: scorer(arch)))
        tb.append(seconds(lambda: bare(arch)))
    return Timings(ta, tb), scorer, evaluation
