"""Detection search throughput: candidates/second, and a candidate's cost relative to its forward passes.

A is one candidate of ``tasknas search`` exactly as the search runs it (``Scorer``): activate the
arch, recalibrate BN on the calibration images, run the evaluation split through ``test_step``, and
compute the search variant of the config's CocoMetric (``FastCocoMetric``: the same values, in memory).
B is the same model's bare passes for that arch: train-mode no-grad
forwards over the same calibration batches and ``test_step`` over the same evaluation batches, with no
metric; B runs right after A on the statistics A recalibrated (BN momentum 0), so both run identical
networks and their post-processing (NMS) does identical work. A/B is the cost of scoring over the network
work; the evaluator's own share (to_dict, CocoMetric.process, COCOeval — what mmengine's ValLoop does
too) is measured separately and the rest is tasknas's bookkeeping. The detector is the demo's (RetinaNet with the
``detnas_shufflenet_demo`` supernet) at 128x128 on the generated shapes set, weights as initialised.
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

import torch
from _timing import Timings, add_process_arguments, measure_in_processes, seconds

from tasknas.core import choices_of, sample, space_of
from tasknas.plugins.detection.demo import demo_config
from tasknas.plugins.detection.synthetic import write_shapes_coco
from tasknas.plugins.openmmlab.config import build_model, quiet
from tasknas.plugins.openmmlab.scoring import Scorer, calibration_batches, calibration_forward


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_shapes_coco(root, {"train": 64, "val": args.val_images, "test": 8}, 128, seed=0)
        cfg = demo_config(root, root / "work", 10)
        model = build_model(cfg, None, "cpu")
        calibration = calibration_batches(cfg, args.calib_images)
        scorer = Scorer(cfg, model, calibration)
        evaluation = list(scorer.loader)
        space = space_of(model)
        choices = choices_of(model)
        rng = random.Random(0)
        archs = [sample(space, rng) for _ in range(args.rounds + 1)]
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

        @torch.no_grad()
        def bare(arch) -> None:
            """The same passes on the state the candidate left (BN statistics frozen: momentum 0), so both
            evaluate identical networks and their post-processing (NMS) does identical work."""
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
        t = Timings(ta, tb)

        # the evaluation plumbing alone on one candidate's outputs, as the scorer does it
        with torch.no_grad():
            outputs = [model.test_step(batch) for batch in evaluation]

        def metric_only() -> None:
            for metric in scorer.metrics:
                for batch, out in zip(evaluation, outputs):
                    metric.process(batch, out if getattr(metric, "accepts_data_samples", False)
                                   else [o.to_dict() for o in out])
                with quiet():
                    metric.compute_metrics(metric.results)
                metric.results.clear()

        metric_s = statistics.median(seconds(metric_only) for _ in range(3))
    return {"ratio": t.ratio(), "candidate_s": t.median_a(), "bare_s": t.median_b(), "metric_s": metric_s}


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
          f"passes {r['bare_s'] * 1e3:.0f} ms)")
    rest = r["candidate_s"] - r["bare_s"] - r["metric_s"]
    print(f"  of the difference: the evaluator (FastCocoMetric) {r['metric_s'] * 1e3:.0f} ms; "
          f"everything else (set_arch, BN bookkeeping) {rest * 1e3:.0f} ms = {rest / r['bare_s'] * 100:.1f}% "
          "of the passes")


if __name__ == "__main__":
    main()
