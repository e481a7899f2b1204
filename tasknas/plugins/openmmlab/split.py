"""HeldOutSplit: carve a fixed held-out set from a training set, as DetNAS scores its search on 5k COCO
train images that the supernet never saw (the reporting split, COCO val/minival, stays untouched).

Wrap the train dataset of the supernet config with ``part='train'``; ``tasknas search --split heldout``
then scores candidates on ``part='heldout'`` of the same dataset (a task whose evaluator reads an annotation
file writes one for exactly those images: detection's COCO file). The held-out images are a seeded choice,
the same for both parts and every process. Registered in mmengine's root ``DATASETS``: detection and
segmentation configs both find it.
"""
from __future__ import annotations

import random

from mmengine.registry import DATASETS

PARTS = ("train", "heldout")


@DATASETS.register_module()
class HeldOutSplit:
    """``part`` of ``dataset``: the ``held_out`` images chosen with ``seed`` ('heldout') or all others ('train')."""

    def __init__(self, dataset: dict, part: str, held_out: int, seed: int = 0):
        if part not in PARTS:
            raise ValueError(f"HeldOutSplit part {part!r} is not one of {list(PARTS)}")
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.dataset.full_init()
        n = len(self.dataset)
        if not isinstance(held_out, int) or not 0 < held_out < n:
            raise ValueError(f"HeldOutSplit held_out={held_out!r} must be an int in 1..{n - 1} "
                             f"(the dataset has {n} images)")
        chosen = set(random.Random(seed).sample(range(n), held_out))
        self.part, self.held_out, self.seed = part, held_out, seed
        self.indices = [i for i in range(n) if (i in chosen) == (part == "heldout")]
        self.metainfo = self.dataset.metainfo

    def full_init(self) -> None:
        """Already done in ``__init__`` (the split needs the dataset's length)."""

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int) -> dict:
        return self.dataset[self.indices[idx]]

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(self.indices[idx])

