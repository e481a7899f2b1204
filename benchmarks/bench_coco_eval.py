"""Which exact COCO evaluator scores search candidates: pycocotools vs faster-coco-eval vs hotcoco.

One candidate's evaluation on the shapes set, as a search scores it: the predictions of ``--images`` images
(the ground-truth boxes jittered, plus false positives, up to ``--per-image`` boxes per image with scores) go
through the metric. Timed, interleaved with the stock path in one process on one thread:

* ``stock``: mmdet's ``CocoMetric`` as mmengine's Evaluator drives it — ``DetDataSample.to_dict`` per image,
  ``process`` (numpy per image), ``compute_metrics`` (a JSON file written and read back, pycocotools'
  COCOeval);
* ``faster-coco-eval``: the same boxes as one ``(N, 7)`` array through faster-coco-eval's COCO/COCOeval;
* ``hotcoco``: the same array through hotcoco's COCO/COCOeval;
* ``FastCocoMetric``: tasknas's metric (hotcoco), fed the data samples, as ``tasknas search`` runs it.

Each line prints the stock path's time over the alternative's (higher is faster) and the largest difference
of the twelve COCOeval statistics from pycocotools' (exactness). Needs faster-coco-eval installed only for
its row (``pip install -c requirements/constraints.txt faster-coco-eval``); it is skipped otherwise.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from _timing import interleave

from tasknas.plugins.detection.coco_metric import STAT_INDEX, FastCocoMetric
from tasknas.plugins.detection.synthetic import CLASSES, noisy_predictions, write_shapes_coco
from tasknas.plugins.openmmlab.config import quiet


def data_samples(preds):
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    samples = []
    for img_id, boxes, scores, labels in preds:
        sample = DetDataSample(metainfo={"img_id": img_id, "ori_shape": (128, 128)})
        sample.pred_instances = InstanceData(bboxes=boxes, scores=scores, labels=labels)
        samples.append(sample)
    return samples


def cocoeval_stats(module, ann_file: Path, detections: np.ndarray, cat_ids, img_ids) -> np.ndarray:
    """The twelve COCOeval statistics with mmdet's settings (maxDets 100/300/1000) by one library's API."""
    with contextlib.redirect_stdout(io.StringIO()), quiet():
        if module.__name__ == "hotcoco":
            gt = module.COCO(str(ann_file))
            dt = gt.load_res(detections)
            evaluation = module.COCOeval(gt, dt, "bbox")
        else:
            gt = module.COCO(str(ann_file))
            dt = gt.loadRes(detections)
            evaluation = (module.COCOeval_faster if hasattr(module, "COCOeval_faster") else module.COCOeval)(
                gt, dt, "bbox")
        evaluation.params.catIds = list(cat_ids)
        evaluation.params.imgIds = list(img_ids)
        evaluation.params.maxDets = [100, 300, 1000]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.asarray(evaluation.stats[:12], dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--per-image", type=int, default=100, help="boxes per image (the detector's max_per_img)")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore")
    import pycocotools.coco
    import pycocotools.cocoeval
    from mmdet.evaluation import CocoMetric

    class Pycocotools:  # one namespace with COCO and COCOeval, as the other two libraries have
        __name__ = "pycocotools"
        COCO = pycocotools.coco.COCO
        COCOeval = pycocotools.cocoeval.COCOeval

    with tempfile.TemporaryDirectory() as tmp:
        ann_file = write_shapes_coco(Path(tmp), {"val": args.images}, 128, seed=0)["val"]
        preds = noisy_predictions(ann_file, args.per_image, seed=0)
        samples = data_samples(preds)
        meta = {"classes": CLASSES}
        with quiet():
            stock = CocoMetric(ann_file=str(ann_file), metric="bbox")
        stock.dataset_meta = meta
        fast = FastCocoMetric(ann_file=str(ann_file))
        fast.dataset_meta = meta

        def run_stock():
            stock.process({}, [s.to_dict() for s in samples])
            with quiet(), contextlib.redirect_stdout(io.StringIO()):
                values = stock.compute_metrics(stock.results)
            stock.results.clear()
            return values

        def run_fast():
            fast.process({}, samples)
            values = fast.compute_metrics(fast.results)
            fast.results.clear()
            return values

        fast.process({}, samples)
        detections = fast.detections(fast.results)
        fast_stats = fast.coco_stats(fast.results)
        fast.results.clear()
        cat_ids, img_ids = fast.cat_ids, fast.img_ids
        reference = cocoeval_stats(Pycocotools, ann_file, detections, cat_ids, img_ids)
        libraries = [("pycocotools (array in)", Pycocotools)]
        try:
            import faster_coco_eval

            libraries.append(("faster-coco-eval", faster_coco_eval))
        except ImportError:
            print("faster-coco-eval not installed: its row is skipped")
        import hotcoco

        libraries.append(("hotcoco", hotcoco))

        print(f"{args.images} images, {len(detections)} boxes; 1 thread; stock = CocoMetric (to_dict, process, "
              "JSON, pycocotools)")
        print(f"{'alternative':26s}{'stock / it':>11s}{'max |Δ stat| vs pycocotools':>30s}")
        for name, module in libraries:
            stats = cocoeval_stats(module, ann_file, detections, cat_ids, img_ids)

            def evaluate(module=module):
                cocoeval_stats(module, ann_file, detections, cat_ids, img_ids)

            def stock_total():
                run_stock()

            t = interleave(stock_total, evaluate, args.rounds)
            print(f"{name:26s}{statistics.median(a / b for a, b in zip(t.a, t.b)):11.2f}"
                  f"{np.abs(stats - reference).max():30.2e}")
        t = interleave(run_stock, run_fast, args.rounds)
        stock_values, fast_values = run_stock(), run_fast()
        keys_equal = stock_values == fast_values
        print(f"{'FastCocoMetric (metric)':26s}{statistics.median(a / b for a, b in zip(t.a, t.b)):11.2f}"
              f"{np.abs(fast_stats - reference).max():30.2e}")
        print(f"FastCocoMetric reports the stock keys and values: {keys_equal} "
              f"(mAP {fast_values.get('bbox_mAP')} vs {stock_values.get('bbox_mAP')}); "
              f"{len(STAT_INDEX)} statistics compared")


if __name__ == "__main__":
    main()
