"""FastCocoMetric computes what mmdet's CocoMetric computes, on the shapes set, from detector-like predictions."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from mmdet.evaluation import CocoMetric
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tasknas.plugins.detection.coco_metric import FastCocoMetric, fast_coco_evaluator
from tasknas.plugins.detection.synthetic import CLASSES, noisy_predictions, write_shapes_coco
from tasknas.plugins.openmmlab.config import quiet


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_metric")
    ann_file = write_shapes_coco(root, {"val": 40}, 128, seed=3)["val"]
    samples = []
    for img_id, boxes, scores, labels in noisy_predictions(ann_file, per_image=60, seed=1):
        sample = DetDataSample(metainfo={"img_id": img_id, "ori_shape": (128, 128)})
        sample.pred_instances = InstanceData(bboxes=boxes, scores=scores, labels=labels)
        samples.append(sample)
    return str(ann_file), samples


def stock_values(ann_file, samples, **options):
    with quiet(), contextlib.redirect_stdout(io.StringIO()):
        metric = CocoMetric(ann_file=ann_file, metric="bbox", **options)
        metric.dataset_meta = {"classes": CLASSES}
        metric.process({}, [s.to_dict() for s in samples])
        return metric.compute_metrics(metric.results)


def fast_metric(ann_file, **options):
    metric = FastCocoMetric(ann_file=ann_file, **options)
    metric.dataset_meta = {"classes": CLASSES}
    return metric


def test_same_keys_and_values_as_the_stock_metric(shapes):
    ann_file, samples = shapes
    for options in ({}, {"metric_items": ["mAP", "mAP_50", "AR@100"]}, {"iou_thrs": np.array([0.5, 0.6, 0.75])}):
        stock = stock_values(ann_file, samples, **options)
        metric = fast_metric(ann_file, **options)
        metric.process({}, [s.to_dict() for s in samples])  # as mmengine's Evaluator hands it
        from_dicts = metric.compute_metrics(metric.results)
        metric.results.clear()
        metric.process({}, samples)  # as the search scorer hands it: the data samples themselves
        from_samples = metric.compute_metrics(metric.results)
        assert stock == from_dicts == from_samples, options
    assert 0.2 < stock_values(ann_file, samples)["bbox_mAP"] < 0.95  # a non-trivial score was compared


def test_unrounded_statistics_agree_with_pycocotools(shapes):
    ann_file, samples = shapes
    metric = fast_metric(ann_file)
    metric.process({}, samples)
    fast = metric.coco_stats(metric.results)
    detections = metric.detections(metric.results)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.params.catIds = gt.getCatIds(catNms=list(CLASSES))
        evaluation.params.imgIds = gt.getImgIds()
        evaluation.params.maxDets = [100, 300, 1000]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    reference = np.asarray(evaluation.stats)
    assert len(fast) == len(reference) == 12
    assert np.abs(fast - reference).max() <= 1e-4, (fast, reference)
    assert len(detections) == sum(len(s.pred_instances) for s in samples)


def test_no_prediction_reports_nothing_like_the_stock_metric(shapes):
    ann_file, _ = shapes
    assert fast_metric(ann_file).compute_metrics([]) == {}


def test_options_it_cannot_honour_are_refused_and_left_to_the_stock_metric(shapes):
    ann_file, _ = shapes
    with pytest.raises(ValueError, match="classwise=True"):
        FastCocoMetric(ann_file=ann_file, classwise=True)
    with pytest.raises(ValueError, match="metric="):
        FastCocoMetric(ann_file=ann_file, metric="segm")
    with pytest.raises(ValueError, match="ann_file=None"):
        FastCocoMetric(ann_file=None)
    cfgs = [dict(type="CocoMetric", ann_file=ann_file, metric="bbox"),
            dict(type="CocoMetric", ann_file=ann_file, metric="bbox", classwise=True),
            dict(type="VOCMetric")]
    swapped = fast_coco_evaluator(cfgs)
    assert [c["type"] for c in swapped] == ["FastCocoMetric", "CocoMetric", "VOCMetric"]
    assert cfgs[0]["type"] == "CocoMetric"  # the given configs are not changed
