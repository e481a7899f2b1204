"""FastCocoMetric: mmdet's ``CocoMetric`` for boxes, the same keys and values, computed in memory by hotcoco.

A search scores every candidate with the config's evaluator. mmdet's ``CocoMetric`` turns each image's
predictions into numpy arrays, then into one dict per box, writes them to a JSON file, reads it back and
runs pycocotools' COCOeval, whose per-image matching is Python: on a 60-image split of the shapes set that is
a third of a candidate's time. ``FastCocoMetric`` keeps the predictions as tensors, converts a whole
evaluation pass at once into one ``(N, 7)`` array ``[image_id, x, y, w, h, score, category_id]`` (boxes
widened to float64 before ``w = x2 - x1``, as the JSON path does in Python floats) and evaluates it with
hotcoco, a Rust COCOeval that matches pycocotools to double precision (``benchmarks/bench_coco_eval.py``
chose it over pycocotools and faster-coco-eval; ``tests/detection/test_coco_metric.py`` checks every
reported key and the twelve unrounded COCOeval statistics against the stock metric).

Use it for search scoring only; final numbers stay with the stock ``CocoMetric``. It supports what search
scoring needs (``metric='bbox'``, ``metric_items``, ``iou_thrs``, ``proposal_nums``); any other option is an
error, and :func:`fast_coco_evaluator` leaves an evaluator config that uses one as it is.

``process`` takes what mmengine's Evaluator hands a metric (``DetDataSample.to_dict()`` dicts) and also the
``DetDataSample`` outputs of ``model.test_step`` themselves (``accepts_data_samples``), so a scorer that calls
the metric directly skips the per-image ``to_dict``.
"""
from __future__ import annotations

import contextlib
import copy
import os
import sys
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger
from mmengine.structures import BaseDataElement

try:
    import hotcoco
except ImportError:  # reported when the metric is built, so configs without it still load
    hotcoco = None

# Positions in COCOeval.stats of the items CocoMetric reports (mmdet's mapping).
STAT_INDEX = {"mAP": 0, "mAP_50": 1, "mAP_75": 2, "mAP_s": 3, "mAP_m": 4, "mAP_l": 5, "AR@100": 6, "AR@300": 7,
              "AR@1000": 8, "AR_s@1000": 9, "AR_m@1000": 10, "AR_l@1000": 11}
DEFAULT_ITEMS = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")
# CocoMetric arguments this metric reads, with the values it accepts for the ones it only checks.
_CHECKED = {"classwise": False, "format_only": False, "outfile_prefix": None, "file_client_args": None,
            "sort_categories": False}
_STOCK_TYPES = ("CocoMetric", "mmdet.CocoMetric")


@contextlib.contextmanager
def _stdout_silenced():
    """File descriptor 1 pointed at the null device (what native code writes there is dropped)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def unsupported_options(options: dict) -> list[str]:
    """The options of a ``CocoMetric`` config (or of ``FastCocoMetric(...)``) that FastCocoMetric cannot honour,
    each as ``'name=value (expected ...)'``; empty when it computes exactly what ``CocoMetric`` would."""
    problems = []
    metric = options.get("metric", "bbox")
    if metric not in ("bbox", ["bbox"], ("bbox",)):
        problems.append(f"metric={metric!r} (expected 'bbox')")
    if options.get("ann_file") is None:
        problems.append("ann_file=None (expected the COCO annotation file of the evaluation split)")
    for name, accepted in _CHECKED.items():
        if options.get(name, accepted) != accepted:
            problems.append(f"{name}={options[name]!r} (expected {accepted!r})")
    proposal_nums = options.get("proposal_nums", (100, 300, 1000))
    if len(proposal_nums) != 3:
        problems.append(f"proposal_nums={proposal_nums!r} (expected three numbers, as COCOeval's AR@ stats)")
    items = options.get("metric_items") or ()
    problems += [f"metric_items item {item!r} (expected one of {list(STAT_INDEX)})" for item in items
                 if item not in STAT_INDEX]
    return problems


def fast_coco_evaluator(evaluator: dict | Sequence[dict]) -> dict | list[dict]:
    """A copy of an evaluator config with every box ``CocoMetric`` that FastCocoMetric computes exactly turned
    into a ``FastCocoMetric``; metrics of other types, and CocoMetrics with options it does not support, stay.
    The given config is not changed."""
    def swap(cfg: dict) -> dict:
        cfg = copy.deepcopy(cfg)
        kind = cfg.get("type")
        if kind in _STOCK_TYPES and not unsupported_options(cfg):
            cfg["type"] = kind.replace("CocoMetric", "FastCocoMetric")
        return cfg

    if isinstance(evaluator, dict):
        return swap(evaluator)
    return [swap(cfg) for cfg in evaluator]


@METRICS.register_module()
class FastCocoMetric(CocoMetric):
    """``CocoMetric(metric='bbox')`` computed by hotcoco on predictions converted once per evaluation pass."""

    accepts_data_samples = True  # process() also takes DetDataSample outputs: no to_dict needed

    def __init__(self, ann_file: str | None = None, metric: str | list[str] = "bbox", classwise: bool = False,
                 proposal_nums: Sequence[int] = (100, 300, 1000), iou_thrs: Sequence[float] | None = None,
                 metric_items: Sequence[str] | None = None, format_only: bool = False,
                 outfile_prefix: str | None = None, file_client_args: dict | None = None,
                 backend_args: dict | None = None, collect_device: str = "cpu", prefix: str | None = None,
                 sort_categories: bool = False) -> None:
        problems = unsupported_options(dict(
            ann_file=ann_file, metric=metric, classwise=classwise, proposal_nums=proposal_nums,
            metric_items=metric_items, format_only=format_only, outfile_prefix=outfile_prefix,
            file_client_args=file_client_args, sort_categories=sort_categories))
        if problems:
            raise ValueError("FastCocoMetric computes box mAP only as CocoMetric(metric='bbox') does; unsupported: "
                             + "; ".join(problems) + ". Use CocoMetric for these")
        if hotcoco is None:
            raise ImportError("FastCocoMetric needs the hotcoco package (pip install hotcoco; it is in "
                              "requirements/stack.txt)")
        # The stock constructor without ann_file: it would load the annotations with pycocotools too.
        super().__init__(ann_file=None, metric="bbox", proposal_nums=proposal_nums, iou_thrs=iou_thrs,
                         metric_items=metric_items, backend_args=backend_args, collect_device=collect_device,
                         prefix=prefix)
        with get_local_path(ann_file, backend_args=backend_args) as local_path:
            self._gt = hotcoco.COCO(local_path)

    def process(self, data_batch: dict | None, data_samples: Sequence[dict | BaseDataElement]) -> None:
        """Keep each image's id and predicted boxes, scores and labels as tensors (nothing converted yet)."""
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                pred, img_id = sample.pred_instances, sample.img_id
                bboxes, scores, labels = pred.bboxes, pred.scores, pred.labels
            else:
                pred, img_id = sample["pred_instances"], sample["img_id"]
                bboxes, scores, labels = pred["bboxes"], pred["scores"], pred["labels"]
            self.results.append((int(img_id), bboxes.detach().cpu(), scores.detach().cpu(), labels.detach().cpu()))

    def detections(self, results: Sequence[tuple]) -> np.ndarray:
        """All predictions of ``results`` as one ``(N, 7)`` float64 array ``[image_id, x, y, w, h, score,
        category_id]``, in the order CocoMetric writes them (image by image, each image's boxes in order)."""
        if self.cat_ids is None:  # lazy, as CocoMetric: dataset_meta is set after the metric is built
            self.cat_ids = self._gt.get_cat_ids(cat_nms=list(self.dataset_meta["classes"]))
        if self.img_ids is None:
            self.img_ids = self._gt.get_img_ids()
        if not results:
            return np.zeros((0, 7))
        img_ids, bboxes, scores, labels = zip(*results)
        counts = torch.tensor([len(s) for s in scores])
        boxes = torch.cat(bboxes).to(torch.float64).reshape(-1, 4)
        columns = [
            torch.repeat_interleave(torch.tensor(img_ids, dtype=torch.float64), counts),
            boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1],
            torch.cat(scores).to(torch.float64),
            torch.tensor(self.cat_ids, dtype=torch.float64)[torch.cat(labels).long()],
        ]
        return torch.stack(columns, dim=1).numpy()

    def coco_stats(self, results: Sequence[tuple]) -> np.ndarray | None:
        """COCOeval's twelve summary statistics (unrounded) for ``results``; None when there is no prediction."""
        detections = self.detections(results)
        if len(detections) == 0:
            return None
        with warnings.catch_warnings():  # mmdet's maxDets (100, 300, 1000) differ from COCO's (1, 10, 100)
            warnings.filterwarnings("ignore", message="hotcoco: max_dets differ", category=UserWarning)
            evaluation = hotcoco.COCOeval(self._gt, self._gt.load_res(detections), "bbox")
            evaluation.params.catIds = list(self.cat_ids)
            evaluation.params.imgIds = list(self.img_ids)
            evaluation.params.maxDets = [int(n) for n in self.proposal_nums]
            evaluation.params.iouThrs = [float(t) for t in self.iou_thrs]
            evaluation.evaluate()
            evaluation.accumulate()
            with _stdout_silenced():  # hotcoco prints its summary table from Rust, past sys.stdout
                evaluation.summarize()
        return np.asarray(evaluation.stats, dtype=np.float64)

    def compute_metrics(self, results: list) -> dict[str, float]:
        """CocoMetric's box keys (``bbox_mAP``, ...), rounded to 3 decimals as it rounds them; ``{}`` when there
        is no prediction at all (CocoMetric logs the same error and reports nothing)."""
        logger = MMLogger.get_current_instance()
        stats = self.coco_stats(results)
        if stats is None:
            logger.error("The testing results of the whole dataset is empty.")
            return {}
        items = self.metric_items if self.metric_items is not None else DEFAULT_ITEMS
        values = {f"bbox_{item}": float(f"{round(stats[STAT_INDEX[item]], 3)}") for item in items}
        logger.info("bbox_mAP_copypaste: " + " ".join(f"{v:.3f}" for v in stats[:6]))
        return values
