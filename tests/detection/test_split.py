"""DetNAS's held-out split: carved from the train set, never trained on, scored with its own annotations."""
import copy
import json

import pytest
from mmengine.registry import DefaultScope

from tasknas.core import EvolutionConfig
from tasknas.plugins.openmmlab.config import build_model
from tasknas.plugins.openmmlab.scoring import Scorer, calibration_batches
from tasknas.plugins.openmmlab.search import search
from tasknas.plugins.openmmlab.split import HeldOutSplit
from tasknas.plugins.openmmlab.training import train
from tests.detection.conftest import SHAPES_CONFIG, tiny_config


def _coco(root):
    return dict(type="CocoDataset", data_root=str(root), ann_file="annotations/train.json",
                data_prefix=dict(img="train/"), metainfo=dict(classes=("disc", "square", "triangle", "cross")),
                pipeline=[])


def test_parts_are_disjoint_cover_the_set_and_do_not_depend_on_the_process(shapes_root):
    with DefaultScope.overwrite_default_scope("mmdet"):
        train_part = HeldOutSplit(_coco(shapes_root), "train", held_out=6, seed=3)
        held = HeldOutSplit(_coco(shapes_root), "heldout", held_out=6, seed=3)
        again = HeldOutSplit(_coco(shapes_root), "heldout", held_out=6, seed=3)
    assert len(held) == 6 and len(train_part) == 24 - 6
    assert not set(train_part.indices) & set(held.indices) and held.indices == again.indices
    assert sorted(train_part.indices + held.indices) == list(range(24))
    assert held[0]["img_id"] == held.get_data_info(0)["img_id"]


def test_bad_split_settings_are_named(shapes_root):
    with DefaultScope.overwrite_default_scope("mmdet"):
        with pytest.raises(ValueError, match=r"held_out=24 must be an int in 1..23"):
            HeldOutSplit(_coco(shapes_root), "train", held_out=24)
        with pytest.raises(ValueError, match="part 'val' is not one of"):
            HeldOutSplit(_coco(shapes_root), "val", held_out=2)


def test_search_on_the_held_out_part_of_the_train_set(shapes_root, tmp_path):
    cfg = tiny_config(SHAPES_CONFIG, shapes_root, tmp_path / "train", iters=2)
    cfg.train_dataloader.dataset = dict(type="HeldOutSplit", dataset=cfg.train_dataloader.dataset, part="train",
                                        held_out=6, seed=0)
    train(cfg, tmp_path / "train")
    weights = tmp_path / "train" / "supernet.pth"
    result = search(cfg, weights, tmp_path / "search", split="heldout", calib_images=4, progress=False,
                    evolution=EvolutionConfig.preset("detnas", population=4, topk=2, mutations=1, crossovers=1,
                                                     generations=1))
    assert len(result.records) == 4
    gt = json.loads((tmp_path / "search" / "heldout_annotations.json").read_text())
    scorer = Scorer(cfg, build_model(cfg, weights, "cpu"), [], "heldout", work_dir=tmp_path / "x")
    held_ids = {scorer.dataset.get_data_info(i)["img_id"] for i in range(len(scorer.dataset))}
    assert {im["id"] for im in gt["images"]} == held_ids and len(held_ids) == 6
    assert {a["image_id"] for a in gt["annotations"]} <= held_ids
    calibration_ids = {s.img_id for b in calibration_batches(cfg, 18) for s in b["data_samples"]}
    assert len(calibration_ids) == 18 and not calibration_ids & held_ids  # never the scored images


def test_held_out_split_needs_a_wrapped_train_set(trained, tmp_path):
    cfg, weights = trained
    with pytest.raises(ValueError, match="--split heldout needs the config's train dataset wrapped in"):
        search(copy.deepcopy(cfg), weights, tmp_path, split="heldout", calib_images=2, progress=False,
               evolution=EvolutionConfig.preset("detnas", population=4, topk=2, mutations=1, crossovers=1,
                                                generations=1))
