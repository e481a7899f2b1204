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
import statistics
import tempfile
from pathlib import Path

import torch
from _candidate import candidate_vs_bare
from _timing import add_process_arguments, measure_in_processes, seconds

from tasknas.plugins.detection.demo import demo_config
from tasknas.plugins.detection.synthetic import write_shapes_coco
from tasknas.plugins.openmmlab.config import build_model


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_shapes_coco(root, {"train": 64, "val": args.val_images, "test": 8}, 128, seed=0)
        cfg = demo_config(root, root / "work", 10)
        model = build_model(cfg, None, "cpu")
        t, scorer, evaluation = candidate_vs_bare(cfg, model, args.calib_images, args.rounds, seed=0)

        # the evaluation plumbing alone on one candidate's outputs, as the scorer does it
        with torch.no_grad():
            outputs = [model.test_step(batch) for batch in evaluation]

        metric_s = statistics.median(seconds(lambda: scorer.metric_values(zip(evaluation, outputs)))
                                     for _ in range(3))
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
