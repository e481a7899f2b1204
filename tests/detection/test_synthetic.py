import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from tasknas.plugins.detection import synthetic
from tasknas.plugins.detection.synthetic import (
    CLASSES,
    coco_metainfo,
    draw_shapes,
    split_rng,
    tight_box,
    write_shapes_coco,
)

BRIGHT = 128  # every background channel is < 64 and every shape pixel has a channel >= 230


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_annotations_load_with_pycocotools_with_the_requested_counts(tmp_path):
    paths = write_shapes_coco(tmp_path, {"train": 6, "val": 3}, image_size=(80, 48), seed=1, max_objects=3)
    assert paths == {s: tmp_path / "annotations" / f"{s}.json" for s in ("train", "val")}
    for split, n in (("train", 6), ("val", 3)):
        coco = COCO(str(paths[split]))
        assert sorted(coco.getImgIds()) == list(range(1, n + 1))
        assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == list(enumerate(CLASSES, 1))
        for image_id in coco.getImgIds():
            info = coco.loadImgs(image_id)[0]
            assert (info["width"], info["height"]) == (80, 48)
            assert cv2.imread(str(tmp_path / split / info["file_name"])).shape == (48, 80, 3)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            assert 1 <= len(anns) <= 3
            for ann in anns:
                assert ann["iscrowd"] == 0 and 1 <= ann["category_id"] <= len(CLASSES)
                assert coco.annToMask(ann).sum() > 0  # the polygons are valid COCO segmentation


def test_written_boxes_are_the_tight_boxes_of_each_shapes_visible_pixels(tmp_path):
    size, n = (72, 64), 12
    path = write_shapes_coco(tmp_path, {"val": n}, image_size=size, seed=5)["val"]
    coco = json.loads(path.read_text())
    rng = split_rng(5, "val")
    for info in coco["images"]:
        image, objects = draw_shapes(rng, *size, max_objects=4)
        assert np.array_equal(cv2.imread(str(tmp_path / "val" / info["file_name"])), image)
        masks = np.stack([m for _, m in objects])
        assert masks.sum(0).max() == 1  # visible masks are disjoint ...
        assert np.array_equal(masks.any(0), image.max(-1) >= BRIGHT)  # ... and are exactly the bright pixels
        anns = [a for a in coco["annotations"] if a["image_id"] == info["id"]]
        assert [a["category_id"] for a in anns] == [label + 1 for label, _ in objects]
        for ann, (_, mask) in zip(anns, objects, strict=True):
            x, y, w, h = ann["bbox"]
            ys, xs = np.nonzero(mask)
            assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
            assert 0 <= x and 0 <= y and x + w <= size[0] and y + h <= size[1] and w > 0 and h > 0
            assert ann["area"] == mask.sum()
    assert tight_box(np.eye(5, dtype=bool)[1:4]) == [1.0, 0.0, 3.0, 3.0]


def test_same_seed_writes_identical_bytes_and_other_seeds_or_splits_differ(tmp_path):
    splits = {"train": 4, "val": 2}
    write_shapes_coco(tmp_path / "a", splits, image_size=48, seed=3)
    write_shapes_coco(tmp_path / "b", splits, image_size=48, seed=3)
    write_shapes_coco(tmp_path / "c", splits, image_size=48, seed=4)
    write_shapes_coco(tmp_path / "d", {"val": 2}, image_size=48, seed=3)
    a, b, c = (_files(tmp_path / r) for r in "abc")
    assert len(a) == 4 + 2 + 2 and a == b
    assert all(a[k] != c[k] for k in a)
    assert _files(tmp_path / "d") == {k: v for k, v in a.items() if "val" in k}  # a split's stream is its own
    assert a["train/000001.png"] != a["val/000001.png"]


def test_max_objects_one_gives_exactly_one_object_per_image(tmp_path):
    coco = json.loads(write_shapes_coco(tmp_path, {"train": 10}, image_size=40, max_objects=1)["train"].read_text())
    assert sorted(a["image_id"] for a in coco["annotations"]) == list(range(1, 11))


def test_a_failed_rewrite_leaves_no_annotation_file(tmp_path, monkeypatch):
    path = write_shapes_coco(tmp_path, {"train": 3}, image_size=32)["train"]
    calls, imencode = [], cv2.imencode

    def encode_twice(ext, image):
        calls.append(ext)
        if len(calls) > 2:
            raise OSError("disk full")
        return imencode(ext, image)

    monkeypatch.setattr(synthetic.cv2, "imencode", encode_twice)
    with pytest.raises(OSError, match="disk full"):
        write_shapes_coco(tmp_path, {"train": 3}, image_size=32, seed=1)
    assert not path.exists() and not list(path.parent.iterdir())


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=31), "image_size must be an int >= 32 or a (width, height) pair of them, got 31"),
    (dict(image_size=(64, 16)), "got (64, 16)"),
    (dict(splits={"train": 0}), "split 'train' must have an int number of images >= 1, got 0"),
    (dict(splits={"train": 2.0}), "got 2.0"),
    (dict(splits={}), "splits must be a non-empty mapping of split name -> number of images, got {}"),
    (dict(splits={"": 2}), "split name '' must be"),
    (dict(splits={"../x": 2}), "split name '../x' must be"),
    (dict(splits={"annotations": 2}), "split name 'annotations' must be"),
    (dict(max_objects=0), "max_objects must be an int >= 1, got 0"),
    (dict(seed=-1), "seed must be an int >= 0, got -1"),
])
def test_bad_arguments_raise_a_value_error_naming_the_value(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        write_shapes_coco(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_mmdet_coco_dataset_loads_every_instance(tmp_path):
    from mmdet.datasets import CocoDataset
    from mmengine.registry import DefaultScope

    path = write_shapes_coco(tmp_path, {"train": 4}, image_size=64, seed=2)["train"]
    coco = json.loads(path.read_text())
    with DefaultScope.overwrite_default_scope("mmdet"):
        dataset = CocoDataset(data_root=str(tmp_path), ann_file="annotations/train.json",
                              data_prefix=dict(img="train/"), metainfo=coco_metainfo(),
                              pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True)],
                              test_mode=False)
        assert len(dataset) == 4 and dataset.metainfo["classes"] == CLASSES
        for i in range(len(dataset)):
            sample = dataset[i]
            anns = [a for a in coco["annotations"] if a["image_id"] == sample["img_id"]]
            assert sample["img"].shape == (64, 64, 3)
            assert sample["gt_bboxes_labels"].tolist() == [a["category_id"] - 1 for a in anns]
            expected = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
            assert sample["gt_bboxes"].tensor.tolist() == expected
