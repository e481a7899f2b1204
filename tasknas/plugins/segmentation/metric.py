"""UnroundedIoUMetric: mmseg's ``IoUMetric`` without the rounding, for scoring search candidates.

mmseg's ``IoUMetric.compute_metrics`` rounds every summary (``mIoU``, ``mAcc``, ``aAcc``, …) to two decimals
of a percent, so two candidates whose mIoU differ by less than 0.005 points tie — common on the small
held-out splits a search scores on. This metric accumulates the same per-image intersections and unions
(``IoUMetric.process`` is inherited unchanged) and returns the same keys, computed from the summed areas by
mmseg's own ``total_area_to_metrics``, as unrounded floats. Rounded to two decimals they are ``IoUMetric``'s
values. Report final numbers with the config's stock ``IoUMetric``; use this one to rank candidates.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

from .data import check_labels


@METRICS.register_module()
class UnroundedIoUMetric(IoUMetric):
    """``IoUMetric`` whose summary values (percent, as mmseg's) are not rounded."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._checked: set[str] = set()  # mask files whose labels process_samples has checked

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """What mmengine's ``Evaluator`` calls: predictions as dicts."""
        if not self.format_only:
            for sample in data_samples:
                self._check(sample["gt_sem_seg"]["data"], sample.get("seg_map_path"))
        super().process(data_batch, data_samples)

    def process_samples(self, data_batch, samples: Sequence) -> None:
        """What the search scorer calls: the ``SegDataSample`` outputs of ``model.test_step`` as they are."""
        num_classes = len(self.dataset_meta["classes"])
        for sample in samples:
            pred = sample.pred_sem_seg.data.squeeze()
            label = sample.gt_sem_seg.data.squeeze().to(pred)
            path = sample.metainfo.get("seg_map_path")
            if path is None or path not in self._checked:  # a search scores the same masks for every candidate
                self._check(label, path)
                if path is not None:
                    self._checked.add(path)
            self.results.append(confusion_areas(pred, label, num_classes, self.ignore_index))

    def _check(self, label, path: str | None) -> None:
        check_labels(label, len(self.dataset_meta["classes"]), self.ignore_index, path or "a ground-truth mask")

    def compute_metrics(self, results: list) -> dict[str, float]:
        if self.format_only:
            return super().compute_metrics(results)
        if not results:
            raise ValueError("UnroundedIoUMetric: no results to evaluate (was the evaluation split empty?)")
        columns = tuple(zip(*results))
        if len(columns) != 4:
            raise ValueError(f"UnroundedIoUMetric expects (intersect, union, pred area, label area) per image, got "
                             f"{len(columns)} values")
        intersect, union, pred_area, label_area = (sum(c) for c in columns)
        per_class = self.total_area_to_metrics(intersect, union, pred_area, label_area, self.metrics,
                                               self.nan_to_num, self.beta)
        return {(key if key == "aAcc" else "m" + key): float(np.nanmean(value) * 100)
                for key, value in per_class.items()}


def unrounded_evaluators(evaluators: Sequence[dict] | dict) -> list[dict]:
    """The evaluator configs a search scores with: every ``IoUMetric`` becomes an ``UnroundedIoUMetric`` with
    the same arguments; other evaluators are kept as they are. The configs given are not modified."""
    items = [evaluators] if isinstance(evaluators, dict) else list(evaluators)
    return [dict(e, type="UnroundedIoUMetric") if e.get("type") in ("IoUMetric", "mmseg.IoUMetric") else dict(e)
            for e in items]


def confusion_areas(pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int):
    """``IoUMetric.intersect_and_union``'s four per-class areas (intersection, union, predicted, labelled; float
    tensors) from one ``bincount`` of the confusion matrix: the same numbers, several times faster."""
    keep = label != ignore_index
    index = label[keep].long() * num_classes + pred[keep].long()
    confusion = torch.bincount(index, minlength=num_classes * num_classes)[:num_classes * num_classes]
    confusion = confusion.reshape(num_classes, num_classes).float()
    intersect = confusion.diagonal()
    pred_area, label_area = confusion.sum(0), confusion.sum(1)
    return intersect, pred_area + label_area - intersect, pred_area, label_area
