"""The generated mask set in mmseg's layouts, the dataset's label check and the unrounded search metric."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import DATASETS
from mmseg.structures import SegDataSample

from tasknas.plugins.segmentation.data import SegShapesDataset
from tasknas.plugins.segmentation.metric import UnroundedIoUMetric, unrounded_evaluators
from tasknas.plugins.segmentation.synthetic import CLASSES, IGNORE, LAYOUTS, inner_rim, write_shapes_seg

PIPELINE = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"), dict(type="PackSegInputs")]


def _labels(dataset) -> list[np.ndarray]:
    return [dataset[i]["data_samples"].gt_sem_seg.data.squeeze(0).numpy() for i in range(len(dataset))]


def test_masks_label_every_pixel_with_ignored_rims_and_the_same_bytes_for_the_same_seed(tmp_path):
    write_shapes_seg(tmp_path / "a", {"train": 4, "val": 3}, image_size=(48, 64), seed=2)
    write_shapes_seg(tmp_path / "b", {"val": 3}, image_size=(48, 64), seed=2)
    for i in range(1, 4):
        name = f"ann_dir/val/{i:06d}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()  # val alone = val
    mask = cv2.imread(str(tmp_path / "a" / "ann_dir/train/000001.png"), cv2.IMREAD_UNCHANGED)
    image = cv2.imread(str(tmp_path / "a" / "img_dir/train/000001.png"))
    assert mask.shape == (48, 64) and mask.dtype == np.uint8 and image.shape == (48, 64, 3)
    assert set(np.unique(mask)) <= set(range(len(CLASSES))) | {IGNORE} and IGNORE in mask
    shapes = (mask > 0) & (mask < IGNORE)
    assert image[shapes].max(axis=-1).min() >= 200 and image[mask == 0].max() < 66  # bright shapes, dark background


def test_each_layout_is_read_by_its_stock_mmseg_dataset_with_the_same_labels(tmp_path):
    init_default_scope("mmseg")
    labels = {}
    for layout, dataset_type in (("shapes", "SegShapesDataset"), ("cityscapes", "CityscapesDataset"),
                                 ("ade20k", "ADE20KDataset")):
        split = "val"
        prefix = write_shapes_seg(tmp_path / layout, {split: 3}, image_size=32, seed=1, layout=layout)[split]
        assert prefix == LAYOUTS[layout].prefix(split)
        dataset = DATASETS.build(dict(type=dataset_type, data_root=str(tmp_path / layout), data_prefix=prefix,
                                      pipeline=PIPELINE))
        assert len(dataset) == 3
        labels[layout] = _labels(dataset)
    for a, b in zip(labels["shapes"], labels["cityscapes"]):
        assert np.array_equal(a, b)
    for a, b in zip(labels["shapes"], labels["ade20k"]):  # ADE20K: stored +1, 0 -> 255 by reduce_zero_label
        assert np.array_equal(a, b)


def test_inner_rim_marks_shape_pixels_next_to_another_label():
    labels = np.zeros((6, 6), np.uint8)
    labels[1:5, 1:5] = 2
    rim = inner_rim(labels)
    assert rim.sum() == 12 and not rim[2:4, 2:4].any() and not rim[0].any()


def test_a_mask_label_outside_the_classes_is_refused_naming_the_file_and_value(tmp_path):
    write_shapes_seg(tmp_path, {"train": 2}, image_size=32, seed=0)
    path = tmp_path / "ann_dir/train/000002.png"
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 7
    cv2.imwrite(str(path), mask)
    dataset = SegShapesDataset(data_root=str(tmp_path), data_prefix=LAYOUTS["shapes"].prefix("train"),
                               pipeline=PIPELINE)
    dataset[0]
    with pytest.raises(ValueError, match=r"000002.png: mask labels \[7\] are not class indices 0..4"):
        dataset[1]
    with pytest.raises(FileNotFoundError, match=r"image folder '.*img_dir/missing' does not exist"):
        SegShapesDataset(data_root=str(tmp_path), data_prefix=LAYOUTS["shapes"].prefix("missing"), pipeline=PIPELINE)


def test_generator_arguments_are_checked():
    with pytest.raises(ValueError, match="layout 'voc' is not one of"):
        write_shapes_seg("unused", layout="voc")
    with pytest.raises(ValueError, match="image_size must be an int >= 32"):
        write_shapes_seg("unused", image_size=16)
    with pytest.raises(ValueError, match="split 'train' must have an int number of images >= 1, got 0"):
        write_shapes_seg("unused", {"train": 0})


def _samples(seed: int, n: int, num_classes: int = 5) -> list[SegDataSample]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        gt = torch.randint(0, num_classes, (1, 16, 16), generator=g)
        gt[:, :2] = IGNORE
        pred = torch.where(torch.rand(1, 16, 16, generator=g) < 0.7, gt, torch.randint(0, num_classes, (1, 16, 16),
                                                                                       generator=g))
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt), pred_sem_seg=PixelData(data=pred))
        sample.set_metainfo({"seg_map_path": f"mask{len(out)}.png"})
        out.append(sample)
    return out


def test_unrounded_miou_rounds_to_iou_metrics_value_and_ranks_finer():
    meta = {"classes": CLASSES}
    stock, fine, direct = IoUMetric(), UnroundedIoUMetric(), UnroundedIoUMetric()
    for m in (stock, fine, direct):
        m.dataset_meta = meta
    samples = _samples(0, 5)
    stock.process({}, [s.to_dict() for s in samples])
    fine.process({}, [s.to_dict() for s in samples])
    direct.process_samples({}, samples)
    expected = stock.compute_metrics(stock.results)
    got, fast = fine.compute_metrics(fine.results), direct.compute_metrics(direct.results)
    assert got == fast
    assert set(got) == set(expected) and all(round(got[k], 2) == expected[k] for k in expected)
    assert got["mIoU"] != expected["mIoU"]  # more than two decimals
    assert unrounded_evaluators([dict(type="IoUMetric", iou_metrics=["mIoU"]), dict(type="Other")]) == [
        dict(type="UnroundedIoUMetric", iou_metrics=["mIoU"]), dict(type="Other")]


def test_the_search_metric_refuses_a_mask_label_outside_the_classes():
    metric = UnroundedIoUMetric()
    metric.dataset_meta = {"classes": CLASSES}
    samples = _samples(1, 2)
    samples[1].gt_sem_seg.data[0, 5, 5] = 9
    with pytest.raises(ValueError, match=r"mask1.png: mask labels \[9\] are not class indices 0..4"):
        metric.process_samples({}, samples)
