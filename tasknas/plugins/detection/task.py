"""Detection's description for the shared OpenMMLab layer: scope ``mmdet``, score ``bbox_mAP``.

What is detection's alone: the searchable parts (the DetNAS backbone, the NAS-FPN / BiFPN necks), a
``DetDataSample`` for whole-detector cost tables, the input size of the test pipeline's ``Resize``, the COCO
annotation file of a held-out split, the in-memory COCO metric search scoring uses,
the ONNX part (backbone, or backbone + neck when the neck is searched)
and a short text of an arch for the demos.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from mmdet.structures import DetDataSample

from ...catalog import SpaceEntry
from ...core import space_of
from ...core.spaces.shufflenet import arch_letters
from ...core.state import atomic_write_text
from ..openmmlab import Task, register_task
from ..openmmlab.config import rank
from .bifpn import SearchableBiFPN, describe_bifpn
from .coco_metric import fast_coco_evaluator
from .nasfpn import SearchableNASFPN, describe_nasfpn


def dummy_sample(height: int, width: int) -> DetDataSample:
    sample = DetDataSample()
    sample.set_metainfo({"img_shape": (height, width), "ori_shape": (height, width), "pad_shape": (height, width),
                         "batch_input_shape": (height, width), "scale_factor": (1.0, 1.0)})
    return sample


def input_size_of(cfg) -> tuple[int, int]:
    """(H, W) of the config's test-time Resize (mmdet scales are (W, H)); the input of the cost tables."""
    for step in cfg.test_dataloader.dataset.get("pipeline", []):
        if step.get("type") == "Resize" and "scale" in step:
            w, h = step["scale"]
            return int(h), int(w)
    raise ValueError("cannot find a Resize with `scale` in the config's test pipeline; pass --input-size H W")


def write_split_annotations(split, path: str | Path) -> Path:
    """A COCO annotation file holding exactly the images of ``split`` (from the wrapped CocoDataset's file)."""
    source = getattr(split.dataset, "ann_file", None)
    if not source or not Path(source).is_file():
        raise ValueError("HeldOutSplit needs a COCO-format dataset with an annotation file to evaluate on")
    data = json.loads(Path(source).read_text())
    ids = {split.get_data_info(i)["img_id"] for i in range(len(split))}
    subset = dict(data, images=[im for im in data["images"] if im["id"] in ids],
                  annotations=[a for a in data["annotations"] if a["image_id"] in ids])
    path = Path(path)
    atomic_write_text(path, json.dumps(subset) + "\n")
    return path


def heldout_evaluators(split, evaluators: list[dict], work_dir: Path) -> list[dict]:
    """CocoMetric reads ground truth from a file: write one for the held-out images (one per rank)."""
    name = "heldout_annotations.json" if rank() == 0 else f"heldout_annotations.rank{rank()}.json"
    ann_file = write_split_annotations(split, work_dir / name)
    return [dict(c, ann_file=str(ann_file)) for c in evaluators]


def onnx_part(subnet: torch.nn.Module, parts) -> tuple[torch.nn.Module, str, Callable[[int], str]]:
    """The backbone (outputs ``c2..c5``), or backbone + neck (the pyramid the head reads: ``p3..p7``) when the
    neck is searched."""
    if "neck" in parts:
        return torch.nn.Sequential(subnet.backbone, subnet.neck), "features.onnx", lambda i: f"p{i + 3}"
    return subnet.backbone, "backbone.onnx", lambda i: f"c{i + 2}"


def search_evaluators(evaluators: list[dict]) -> list[dict]:
    """Box ``CocoMetric``s become ``FastCocoMetric``s: the same values, computed in memory."""
    return fast_coco_evaluator(evaluators)


def describe(arch) -> str:
    """A short text for an arch of any detection space: backbone letters, then the neck's cells."""
    chosen = dict(arch)
    parts = []
    backbone = tuple(sorted((k, v) for k, v in chosen.items() if not k.startswith("neck.")))
    if backbone:
        parts.append(arch_letters(backbone))
    if "neck.outputs" in chosen:
        parts.append(describe_nasfpn(chosen))
    elif "neck.depth" in chosen:
        parts.append(describe_bifpn(chosen))
    return " | ".join(parts)


DETECTION = register_task(Task(
    name="detection", scope="mmdet", metric_key="bbox_mAP", metric_label="mAP",
    searchable={"backbone": ("SearchableShuffleNetBackbone",), "neck": ("SearchableNASFPN", "SearchableBiFPN")},
    dummy_sample=dummy_sample, input_size=input_size_of, onnx_part=onnx_part,
    heldout_evaluators=heldout_evaluators, search_evaluators=search_evaluators, describe=describe))


def _nasfpn() -> SearchableNASFPN:
    return SearchableNASFPN(in_channels=[8, 8, 8, 8], out_channels=8, num_outs=5, stack_times=7, start_level=1)


def _bifpn() -> SearchableBiFPN:
    return SearchableBiFPN(in_channels=[8, 8, 8], out_channels=8, num_outs=5, num_layers=3)


# `tasknas spaces`: detection's own spaces (the backbones are the core's detnas_shufflenet_* spaces)
SPACES = [
    SpaceEntry("nasfpn (7 cells, COCO config)", "neck: SearchableNASFPN (mmdet), alone or with a backbone",
               lambda: space_of(_nasfpn())),
    SpaceEntry("bifpn (3 layers, 5 levels)", "neck: SearchableBiFPN (mmdet), alone or with a backbone",
               lambda: space_of(_bifpn())),
]
