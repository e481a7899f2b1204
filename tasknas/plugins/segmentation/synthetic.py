"""A small generated semantic-segmentation set: coloured shapes on a dark noisy background, with PNG masks.

Used by the demo and by tests that train real MMSegmentation models offline, no download. Every pixel is
labelled: ``0`` background, ``1..4`` the shape classes of :data:`CLASSES`; the one-pixel inner rim of every
shape is ``255`` (ignored by mmseg's losses and ``IoUMetric``), as VOC marks object boundaries. Each class has
a hue family (hues 90° apart, jittered by up to ±50°, so neighbouring families overlap a little and form
decides there), and a later shape hides the pixels of earlier ones it covers. A per-pixel colour reading (mmseg's
FCNHead on a stride-4 feature) learns the classes within a few hundred iterations; what the demo's DeepLabV3+
heads learn at its budget is in docs/segmentation.md.

The same scenes can be written in three on-disk layouts, each read by the stock mmseg dataset of that name:

* ``shapes`` — ``img_dir/<split>/NNNNNN.png`` + ``ann_dir/<split>/NNNNNN.png`` (:class:`~.data.SegShapesDataset`,
  mmseg's custom-dataset layout);
* ``cityscapes`` — ``leftImg8bit/<split>/shapes/NNNNNN_leftImg8bit.png`` +
  ``gtFine/<split>/shapes/NNNNNN_gtFine_labelTrainIds.png`` (``CityscapesDataset``; labels are train ids);
* ``ade20k`` — ``images/<split>/NNNNNN.jpg`` + ``annotations/<split>/NNNNNN.png`` (``ADE20KDataset``); ADE20K
  stores label + 1 with 0 for "other", which its ``reduce_zero_label=True`` maps back to 255, so the rim is
  written as 0 there.

Only numpy, OpenCV and the standard library are used; the same arguments write the same bytes.
"""
from __future__ import annotations

import os
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ...core.state import atomic_write

CLASSES = ("background", "disc", "square", "triangle", "cross")
PALETTE = [[0, 0, 0], [220, 20, 60], [0, 130, 200], [60, 180, 75], [245, 130, 48]]
IGNORE = 255
MIN_IMAGE_SIZE = 32
SIDE_RANGE = (0.2, 0.5)  # a shape's side, as a fraction of the shorter image side
HUES = (0, 0, 45, 90, 135)  # per class (OpenCV hue units, 2 degrees each); background is dark
HUE_JITTER = 25

_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Layout:
    """Where a split's images and masks go, and how a label is stored (``stored = label + offset``, rim value)."""

    images: str  # folder under root; ``{split}`` is replaced
    masks: str
    image_suffix: str
    mask_suffix: str
    subfolder: str = ""  # Cityscapes keeps one folder per city below the split's folder
    label_offset: int = 0
    rim: int = IGNORE

    def prefix(self, split: str) -> dict[str, str]:
        """``data_prefix`` of the mmseg dataset reading ``split`` (relative to the data root)."""
        return dict(img_path=self.images.format(split=split), seg_map_path=self.masks.format(split=split))


LAYOUTS = {
    "shapes": Layout("img_dir/{split}", "ann_dir/{split}", ".png", ".png"),
    "cityscapes": Layout("leftImg8bit/{split}", "gtFine/{split}", "_leftImg8bit.png", "_gtFine_labelTrainIds.png",
                         subfolder="shapes"),
    "ade20k": Layout("images/{split}", "annotations/{split}", ".jpg", ".png", label_offset=1, rim=0),
}


def _shape(label: int, side: int) -> np.ndarray:
    """A ``side`` × ``side`` boolean mask of shape ``CLASSES[label]`` (1..4) filling its square."""
    mask = np.zeros((side, side), np.uint8)
    far = side - 1
    name = CLASSES[label]
    if name == "disc":
        cv2.circle(mask, (side // 2, side // 2), side // 2, 1, thickness=-1)
    elif name == "square":
        mask[:] = 1
    elif name == "triangle":
        cv2.fillPoly(mask, [np.array([[far // 2, 0], [0, far], [far, far]], np.int32)], 1)
    else:  # cross: two bars a third of the side wide
        bar = max(2, side // 3)
        lo = (side - bar) // 2
        mask[lo:lo + bar, :] = 1
        mask[:, lo:lo + bar] = 1
    return mask.astype(bool)


def inner_rim(labels: np.ndarray) -> np.ndarray:
    """Pixels of a shape (label > 0) with a 4-neighbour of another label: the one-pixel rim inside each shape."""
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre) |
               (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return differs & (labels > 0)


def draw_scene(rng: np.random.Generator, height: int, width: int, max_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: an ``H × W × 3`` uint8 BGR image and its ``H × W`` uint8 labels (0..4, 255 on shape rims)."""
    labels = np.zeros((height, width), np.uint8)
    image = np.empty((height, width, 3), np.int64)
    image[:] = rng.integers(0, 50, 3)  # dark background ...
    short = min(height, width)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(1, len(CLASSES)))
        side = max(4, int(round(rng.uniform(*SIDE_RANGE) * short)))
        y0, x0 = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        mask = np.zeros((height, width), bool)
        mask[y0:y0 + side, x0:x0 + side] = _shape(label, side)
        hue = (HUES[label] + rng.integers(-HUE_JITTER, HUE_JITTER + 1)) % 180  # OpenCV hues: 0..179
        hsv = np.array([[[hue, rng.integers(150, 256), rng.integers(200, 256)]]], np.uint8)
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]  # ... and bright shapes of their class's hue family
        labels[mask] = label
        image[mask] = colour
    labels[inner_rim(labels)] = IGNORE
    image += rng.integers(0, 16, (height, width, 3))
    return image.clip(0, 255).astype(np.uint8), labels


def _check(splits: Mapping[str, int], image_size, seed: int, max_objects: int, layout: str) -> tuple[int, int]:
    def is_int(v: object) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {sorted(LAYOUTS)}")
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError(f"splits must be a non-empty mapping of split name -> number of images, got {splits!r}")
    for name, count in splits.items():
        if not isinstance(name, str) or not _SPLIT_NAME.fullmatch(name):
            raise ValueError(f"split name {name!r} must be a non-empty name of letters, digits, '_' or '-'")
        if not is_int(count) or count < 1:
            raise ValueError(f"split {name!r} must have an int number of images >= 1, got {count!r}")
    size = (image_size, image_size) if is_int(image_size) else image_size
    if not (isinstance(size, tuple | list) and len(size) == 2 and all(is_int(s) and s >= MIN_IMAGE_SIZE
                                                                     for s in size)):
        raise ValueError(f"image_size must be an int >= {MIN_IMAGE_SIZE} or a (height, width) pair of them, "
                         f"got {image_size!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if not is_int(max_objects) or max_objects < 1:
        raise ValueError(f"max_objects must be an int >= 1, got {max_objects!r}")
    return int(size[0]), int(size[1])


def _write_image(path: Path, array: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix == ".jpg" else []
    ok, data = cv2.imencode(path.suffix, array, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path}")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data.tobytes()))


def write_shapes_seg(root: str | os.PathLike, splits: Mapping[str, int] = {"train": 200, "val": 50},  # noqa: B006
                     image_size: int | tuple[int, int] = 64, seed: int = 0, max_objects: int = 3,
                     layout: str = "shapes") -> dict[str, dict[str, str]]:
    """Write each split's images and masks under ``root`` in ``layout``; return ``{split: data_prefix}`` (the
    folders, relative to ``root``, that the layout's mmseg dataset reads).

    ``image_size`` is the side of square images or an ``(height, width)`` pair. A split's random stream depends
    on the seed and the split's name only, so ``val`` is the same whether or not ``train`` is written with it.
    """
    height, width = _check(splits, image_size, seed, max_objects, layout)
    spec = LAYOUTS[layout]
    root = Path(root)
    written = {}
    for split, count in splits.items():
        prefix = spec.prefix(split)
        image_dir, mask_dir = (root / prefix[k] / spec.subfolder for k in ("img_path", "seg_map_path"))
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
        for i in range(1, count + 1):
            image, labels = draw_scene(rng, height, width, max_objects)
            stored = np.where(labels == IGNORE, spec.rim, labels.astype(np.int64) + spec.label_offset).astype(np.uint8)
            _write_image(image_dir / f"{i:06d}{spec.image_suffix}", image)
            _write_image(mask_dir / f"{i:06d}{spec.mask_suffix}", stored)
        written[split] = prefix
    return written
