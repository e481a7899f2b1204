"""Detection search throughput: candidates/second, and a candidate's cost relative to its forward passes.

A is one candidate of ``tasknas search`` exactly as the search runs it (``DetectionScorer``): activate the
arch, recalibrate BN on the calibration images, run the evaluation split through ``test_step``, and
compute the config's CocoMetric. B is the same model's bare passes for that arch: train-mode no-grad
forwards over the same calibration batches and ``test_step`` over the same evaluation batches, with no
metric. A/B is the overhead of scoring over the network work (goal <= 1.05 for the core part; COCOeval
itself is part of A and is reported separately). The detector is the demo's (RetinaNet with the
``detnas_shufflenet_demo`` supernet) at 128x128 on the generated shapes set, weights as initialised.
"""
from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch
from _timing import add_process_arguments, interleave, measure_in_processes

from tasknas.core import choices_of, sample, space_of
from tasknas.plugins.detection.demo import demo_config
from tasknas.plugins.detection.evaluation import DetectionScorer, build_detector, calibration_batches
from tasknas.plugins.detection.synthetic import write_shapes_coco


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_shapes_coco(root, {"train": 64, "val": args.val_images, "test": 8}, 128, seed=0)
        cfg = demo_config(root, root / "work", 10)
        model = build_detector(cfg, None, "cpu")
        calibration = calibration_batches(cfg, args.calib_images)
        scorer = DetectionScorer(cfg, model, calibration)
        evaluation = list(scorer.loader)
        space = space_of(model)
        choices = choices_of(model)
        rng = random.Random(0)
        archs = [sample(space, rng) for _ in range(args.rounds + 1)]
        it_a, it_b = iter(archs), iter(archs)

        def candidate() -> None:
            scorer(next(it_a))

        @torch.no_grad()
        def bare() -> None:
            chosen = next(it_b).as_dict()
            for choice in choices:
                choice.active = chosen[choice.key]
            model.train()
            for batch in calibration:
                scorer.calibrate_forward(model, batch)
            model.eval()
            for batch in evaluation:
                model.test_step(batch)

        t = interleave(candidate, bare, args.rounds, warmup=1)
    return {"ratio": t.ratio(), "candidate_s": t.median_a(), "bare_s": t.median_b()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calib-images", type=int, default=32)
    parser.add_argument("--val-images", type=int, default=60)
    add_process_arguments(parser)
    args = parser.parse_args()
    r = measure_in_processes(args, measure)
    print(f"detection search: {1.0 / r['candidate_s']:.2f} candidates/s "
          f"({args.calib_images} calibration + {args.val_images} evaluation images at 128x128, 1 thread)")
    print(f"candidate / its forward passes = {r['ratio']:.3f}  (candidate {r['candidate_s'] * 1e3:.0f} ms, bare "
          f"passes {r['bare_s'] * 1e3:.0f} ms; the difference is BN bookkeeping, collation and COCOeval)")


if __name__ == "__main__":
    main()
