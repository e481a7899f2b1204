"""Segmentation: supernet train step / static subnet, and a search candidate / its forward passes.

The segmentor is the segmentation demo's (``tasknas demo seg``: the ``detnas_shufflenet_demo`` backbone space
under the searchable ASPP / DeepLabV3+ head, joint arch) at 128x128 on the generated shapes set, weights as
initialised, one thread.

* **Train step** (goal <= 1.02): A is one SGD step (momentum, weight decay) of the supernet on a fixed sampled
  arch, through mmseg's own ``loss`` (decode head cross-entropy) after the data preprocessor; B is the same
  step on ``fix(supernet, arch)`` with its own optimizer. A fresh arch per round (its static net built
  beforehand).
* **Candidate** (goal <= 1.05): A is one candidate exactly as ``tasknas search`` scores it (the layer's
  ``Scorer``: activate, recalibrate BN on the calibration images, ``test_step`` over the evaluation split, the
  unrounded mIoU); B is the same model's bare passes for that arch: train-mode no-grad forwards over the same
  calibration batches and ``test_step`` over the same evaluation batches, no metric. B runs right after A on
  the statistics A recalibrated (BN momentum 0), so both run identical networks.
"""
from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch
from _candidate import candidate_vs_bare
from _timing import Timings, add_process_arguments, measure_in_processes, seconds, verdict

from tasknas.core import fix, sample, set_arch, space_of
from tasknas.plugins.openmmlab.config import build_model
from tasknas.plugins.openmmlab.scoring import calibration_batches
from tasknas.plugins.segmentation.demo import demo_config
from tasknas.plugins.segmentation.synthetic import write_shapes_seg


def _train_ratio(cfg, model, rounds: int) -> Timings:
    loader = calibration_batches(cfg, 8, batch_size=8)  # 8 training images, 128x128, with their masks
    batch = model.data_preprocessor(loader[0], True)
    rng = random.Random(0)
    archs = [sample(space_of(model), rng) for _ in range(rounds + 1)]

    def step(net, optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        losses = net.loss(batch["inputs"], batch["data_samples"])
        sum(v for k, v in losses.items() if "loss" in k).backward()
        optimizer.step()

    model.train()
    super_opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    ta, tb = [], []
    for i, arch in enumerate(archs):
        fixed = fix(model, arch).train()
        fixed_opt = torch.optim.SGD(fixed.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        set_arch(model, arch)
        step(model, super_opt), step(fixed, fixed_opt)  # warm-up: momentum buffers exist
        a = lambda: (set_arch(model, arch), step(model, super_opt))  # noqa: E731
        b = lambda: step(fixed, fixed_opt)  # noqa: E731
        if i == 0:
            continue
        first, second = (a, b) if i % 2 else (b, a)
        t1, t2 = seconds(first), seconds(second)
        ta.append(t1 if first is a else t2)
        tb.append(t2 if first is a else t1)
    return Timings(ta, tb)


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_shapes_seg(root, {"train": 32, "val": args.val_images, "test": 4}, 128, seed=0)
        cfg = demo_config(root, root / "work", 10, job="joint")  # the joint supernet the docstring describes
        model = build_model(cfg, None, "cpu")
        train = _train_ratio(cfg, model, args.rounds)
        candidate = candidate_vs_bare(cfg, model, args.calib_images, args.rounds, seed=1)[0]
    return {"train_ratio": train.ratio(), "train_super_ms": train.median_a() * 1e3,
            "train_fixed_ms": train.median_b() * 1e3, "candidate_ratio": candidate.ratio(),
            "candidate_ms": candidate.median_a() * 1e3, "bare_ms": candidate.median_b() * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calib-images", type=int, default=32)
    parser.add_argument("--val-images", type=int, default=32)
    add_process_arguments(parser)
    args = parser.parse_args()
    r = measure_in_processes(args, measure)
    print(f"segmentation train step: supernet / static subnet = {r['train_ratio']:.3f} "
          f"({verdict(r['train_ratio'], 1.02)} <= 1.02; supernet {r['train_super_ms']:.0f} ms, static "
          f"{r['train_fixed_ms']:.0f} ms, batch 8 at 128x128)")
    print(f"segmentation candidate / its forward passes = {r['candidate_ratio']:.3f} "
          f"({verdict(r['candidate_ratio'], 1.05)} <= 1.05; candidate {r['candidate_ms']:.0f} ms, bare passes "
          f"{r['bare_ms']:.0f} ms; {args.calib_images} calibration + {args.val_images} evaluation images)")


if __name__ == "__main__":
    main()
