"""SegShapesDataset: the generated shapes set (:mod:`.synthetic`) as an mmseg ``BaseSegDataset``, and the mask check.

mmseg takes whatever a mask holds: a label at or above the number of classes that is not the ignore index
(a mask written for another class list, or ADE20K-style masks read without ``reduce_zero_label``) either
crashes the loss deep inside torch or — ``IoUMetric`` histograms only ``0..C-1`` — silently drops those pixels
from the score. :func:`check_labels` names the file and the bad values instead; this dataset applies it to
every sample, and the search metric (:class:`~.metric.UnroundedIoUMetric`) to every scored image.
"""
from __future__ import annotations

import os

import torch
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .synthetic import CLASSES, PALETTE


def check_labels(labels: torch.Tensor, num_classes: int, ignore_index: int, where: str) -> None:
    """Raise when ``labels`` holds a value outside ``0..num_classes-1`` that is not ``ignore_index``."""
    values = torch.unique(labels)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_index)]
    if bad.numel():
        raise ValueError(f"{where}: mask labels {bad.tolist()[:8]} are not class indices 0..{num_classes - 1} "
                         f"(nor the ignore index {ignore_index}); does the mask belong to another class list, or "
                         "does the data set need reduce_zero_label?")


@DATASETS.register_module()
class SegShapesDataset(BaseSegDataset):
    """The generated shapes set: ``img_dir/<split>/*.png`` + ``ann_dir/<split>/*.png`` under ``data_root``
    (``data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train')``); labels 0..4, 255 on rims."""

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self, img_suffix: str = ".png", seg_map_suffix: str = ".png", **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self) -> list[dict]:
        folder = self.data_prefix.get("img_path", "")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"SegShapesDataset: image folder {folder!r} does not exist (write the set "
                                    "with tasknas.plugins.segmentation.synthetic.write_shapes_seg, or run "
                                    "`tasknas demo seg`)")
        data = super().load_data_list()
        if not data:
            raise ValueError(f"SegShapesDataset: image folder {folder!r} holds no {self.img_suffix} images")
        return data

    def prepare_data(self, idx: int):
        data = super().prepare_data(idx)
        if data is not None and "data_samples" in data and "gt_sem_seg" in data["data_samples"]:
            check_labels(data["data_samples"].gt_sem_seg.data, len(self.metainfo["classes"]), self.ignore_index,
                         data["data_samples"].seg_map_path)
        return data
