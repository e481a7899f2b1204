"""A small generated COCO-format detection data set: bright filled shapes on a dark noisy background.

Used by the demo and by tests that train real MMDetection models (``CocoDataset``) offline, no download.
``write_shapes_coco(root, {"train": 256, "val": 64})`` writes::

    root/train/000001.png ...        images of split "train"  (CocoDataset: data_prefix=dict(img="train/"))
    root/annotations/train.json      its COCO annotations     (CocoDataset: ann_file="annotations/train.json")

Each box is the tight box of the visible pixels of its shape: shapes may overlap a little, a later shape
hides the pixels of earlier ones it covers, and a placement that would hide much of an earlier shape is
redrawn. Only numpy, OpenCV and the standard library are used.
"""
from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from tasknas.core.state import atomic_write, atomic_write_text

CLASSES = ("disc", "square", "triangle", "cross")
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48)]

MIN_IMAGE_SIZE = 32
SIZE_RANGE = (0.12, 0.40)  # shape side, as a fraction of the shorter image side
MAX_BOX_IOU = 0.3  # a placement whose box overlaps an earlier box more than this is redrawn
MIN_VISIBLE = 0.6  # ... and so is one that leaves an earlier shape less than this fraction visible
PLACEMENT_TRIES = 20  # per object; an image that cannot fit more objects gets fewer (never fewer than 1)
BACKGROUND_LEVELS = 40  # background colour channels are in [0, 40) ...
NOISE_LEVELS = 25  # ... plus per-pixel noise in [0, 25), so every background pixel is < 64 in every channel;
SHAPE_BRIGHT = 230  # one channel of a shape's colour is this, so it is >= 230 at every shape pixel

_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")


def coco_metainfo() -> dict:
    """``metainfo`` for mmdet's ``CocoDataset`` on this data set: class names (ids 1..K) and a palette."""
    return dict(classes=CLASSES, palette=list(PALETTE))


def _shape_mask(label: int, x0: int, y0: int, side: int, height: int, width: int) -> np.ndarray:
    """Boolean mask of shape ``CLASSES[label]`` drawn inside the square ``[x0, x0 + side) x [y0, y0 + side)``."""
    mask = np.zeros((height, width), np.uint8)
    x1, y1 = x0 + side - 1, y0 + side - 1  # inclusive far corner
    name = CLASSES[label]
    if name == "disc":  # pixel centres within side/2 of the square's centre: fills the square's width exactly
        yy, xx = np.ogrid[:side, :side]
        c = (side - 1) / 2
        mask[y0:y1 + 1, x0:x1 + 1] = (yy - c) ** 2 + (xx - c) ** 2 <= (side / 2) ** 2
    elif name == "square":
        mask[y0:y1 + 1, x0:x1 + 1] = 1
    elif name == "triangle":
        points = np.array([[(x0 + x1) // 2, y0], [x0, y1], [x1, y1]], np.int32)
        cv2.fillPoly(mask, [points], 1, lineType=cv2.LINE_8)
    else:  # cross
        bar = max(2, side // 3)
        lo = (side - bar) // 2
        mask[y0 + lo:y0 + lo + bar, x0:x1 + 1] = 1
        mask[y0:y1 + 1, x0 + lo:x0 + lo + bar] = 1
    return mask.astype(bool)


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes with exclusive far corners."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def tight_box(mask: np.ndarray) -> list[float]:
    """COCO ``[x, y, w, h]`` of the true pixels of a non-empty mask: top-left pixel corner and pixel extent."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]


def draw_shapes(rng: np.random.Generator, width: int, height: int,
                max_objects: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One image: ``(image, objects)``, an ``height x width x 3`` uint8 BGR image and, in drawing order,
    ``(label, visible_mask)`` for each of its 1..``max_objects`` shapes (masks are disjoint and non-empty)."""
    n = int(rng.integers(1, max_objects + 1))
    short = min(width, height)
    owner = np.full((height, width), -1, np.int64)  # index of the object that owns each pixel, -1: background
    labels: list[int] = []
    colors: list[np.ndarray] = []
    boxes: list[tuple[int, int, int, int]] = []
    full_areas: list[int] = []
    for _ in range(n):
        for _try in range(PLACEMENT_TRIES):
            label = int(rng.integers(len(CLASSES)))
            side = int(round(rng.uniform(*SIZE_RANGE) * short))
            x0 = int(rng.integers(0, width - side + 1))
            y0 = int(rng.integers(0, height - side + 1))
            box = (x0, y0, x0 + side, y0 + side)
            if any(_box_iou(box, b) > MAX_BOX_IOU for b in boxes):
                continue
            mask = _shape_mask(label, x0, y0, side, height, width)
            hidden = np.bincount(owner[mask & (owner >= 0)], minlength=len(boxes))
            visible = np.bincount(owner[owner >= 0], minlength=len(boxes)) - hidden
            if any(visible[j] < MIN_VISIBLE * full_areas[j] for j in range(len(boxes))):
                continue
            owner[mask] = len(boxes)
            labels.append(label)
            boxes.append(box)
            full_areas.append(int(mask.sum()))
            color = rng.integers(0, 200, 3)
            color[rng.integers(3)] = SHAPE_BRIGHT
            colors.append(color)
            break
    background = rng.integers(0, BACKGROUND_LEVELS, 3)
    base = np.array(colors + [background])[owner]  # owner -1 picks the background colour
    image = (base + rng.integers(0, NOISE_LEVELS, (height, width, 3))).astype(np.uint8)  # all values <= 254
    return image, [(label, owner == k) for k, label in enumerate(labels)]


def _polygons(mask: np.ndarray, box: list[float]) -> list[list[float]]:
    """COCO polygons of the outer contours of ``mask``; the box as a 4-point polygon if none has 3+ points."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    if polys:
        return polys
    x, y, w, h = box
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _check(splits: Mapping[str, int], image_size: int | tuple[int, int], seed: int,
           max_objects: int) -> tuple[int, int]:
    def is_int(v: object) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    if not isinstance(splits, Mapping) or not splits:
        raise ValueError(f"splits must be a non-empty mapping of split name -> number of images, got {splits!r}")
    for name, count in splits.items():
        if not isinstance(name, str) or not _SPLIT_NAME.fullmatch(name) or name == "annotations":
            raise ValueError(f"split name {name!r} must be a non-empty name of letters, digits, '_' or '-', "
                             "other than 'annotations'")
        if not is_int(count) or count < 1:
            raise ValueError(f"split {name!r} must have an int number of images >= 1, got {count!r}")
    size = (image_size, image_size) if is_int(image_size) else image_size
    if not (isinstance(size, tuple | list) and len(size) == 2 and all(is_int(s) and s >= MIN_IMAGE_SIZE
                                                                     for s in size)):
        raise ValueError(f"image_size must be an int >= {MIN_IMAGE_SIZE} or a (width, height) pair of them, "
                         f"got {image_size!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if not is_int(max_objects) or max_objects < 1:
        raise ValueError(f"max_objects must be an int >= 1, got {max_objects!r}")
    return int(size[0]), int(size[1])


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The random stream of one split: it depends on the seed and the split's name only (not on the other
    splits), so ``val`` is the same whether or not ``train`` is written with it."""
    return np.random.default_rng([seed, zlib.crc32(split.encode())])


def write_shapes_coco(root: str | os.PathLike, splits: Mapping[str, int] = {"train": 256, "val": 64},  # noqa: B006
                      image_size: int | tuple[int, int] = 128, seed: int = 0,
                      max_objects: int = 4) -> dict[str, Path]:
    """Write each split's images to ``root/<split>/NNNNNN.png`` and its annotations to
    ``root/annotations/<split>.json`` (COCO detection format, category ids 1..K in :data:`CLASSES` order,
    image ids 1..N); return ``{split: annotation path}``.

    ``image_size`` is the side of square images or a ``(width, height)`` pair. The same arguments write the
    same bytes. A split's JSON is removed before its images are rewritten and is put in place atomically after
    them, so an annotation file present always describes complete images.
    """
    width, height = _check(splits, image_size, seed, max_objects)
    root = Path(root)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    written: dict[str, Path] = {}
    for split, count in splits.items():
        ann_path = root / "annotations" / f"{split}.json"
        ann_path.unlink(missing_ok=True)
        image_dir = root / split
        image_dir.mkdir(parents=True, exist_ok=True)
        rng = split_rng(seed, split)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            image, objects = draw_shapes(rng, width, height, max_objects)
            file_name = f"{image_id:06d}.png"
            ok, png = cv2.imencode(".png", image)
            if not ok:
                raise RuntimeError(f"OpenCV could not encode {image_dir / file_name}")
            atomic_write(image_dir / file_name, lambda tmp: Path(tmp).write_bytes(png.tobytes()))
            images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
            for label, mask in objects:
                box = tight_box(mask)
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=label + 1,
                                        bbox=box, area=float(mask.sum()), iscrowd=0,
                                        segmentation=_polygons(mask, box)))
        coco = dict(images=images, annotations=annotations, categories=categories)
        atomic_write_text(ann_path, json.dumps(coco, separators=(",", ":")))
        written[split] = ann_path
    return written


def noisy_predictions(ann_file: str | os.PathLike, per_image: int = 100, seed: int = 0):
    """Detector-like predictions for the images of a COCO annotation file, to exercise a metric without a
    trained model: per object three jittered copies of its box (80 % with its class), then random false
    positives up to ``per_image`` boxes. One ``(img_id, boxes (K, 4) x1y1x2y2, scores (K,), labels (K,))`` tuple
    of float32/int64 tensors per image; the same arguments give the same predictions."""
    import random

    import torch

    rng = random.Random(seed)
    data = json.loads(Path(ann_file).read_text())
    by_image: dict[int, list] = {im["id"]: [] for im in data["images"]}
    for ann in data["annotations"]:
        by_image[ann["image_id"]].append(ann)
    num_classes = len(data["categories"])
    out = []
    for img_id, anns in by_image.items():
        boxes, scores, labels = [], [], []
        for ann in anns:
            x, y, w, h = ann["bbox"]
            for _ in range(3):
                dx, dy = rng.gauss(0, 0.1 * w), rng.gauss(0, 0.1 * h)
                boxes.append([x + dx, y + dy, x + w + dx, y + h + dy])
                scores.append(rng.random())
                labels.append(ann["category_id"] - 1 if rng.random() < 0.8 else rng.randrange(num_classes))
        while len(boxes) < per_image:
            x, y = rng.uniform(0, 100), rng.uniform(0, 100)
            boxes.append([x, y, x + rng.uniform(4, 28), y + rng.uniform(4, 28)])
            scores.append(rng.random() * 0.5)
            labels.append(rng.randrange(num_classes))
        out.append((img_id, torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32),
                    torch.tensor(labels, dtype=torch.int64)))
    return out
