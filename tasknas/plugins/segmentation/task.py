"""Segmentation's description for the shared OpenMMLab layer: scope ``mmseg``, score ``mIoU``.

What is segmentation's alone: the searchable parts (the DetNAS backbone, the ASPP and decoder-cell decode
heads), a ``SegDataSample`` for whole-segmentor cost tables, the input size (the crop size the data
preprocessor pads training batches to, else the test ``Resize``), the cost tables over backbone + decode head,
the unrounded mIoU the search ranks candidates with, the ONNX part (the whole segmentor, logits at the input
size) and a short text of an arch for the demos. A held-out split needs nothing of its own: ``IoUMetric``
reads the ground truth from the data samples.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from mmseg.models.utils import resize
from mmseg.structures import SegDataSample

from ...catalog import SpaceEntry
from ...core import space_of
from ...core.spaces.shufflenet import arch_letters
from ..openmmlab import Task, register_task
from .aspp import SearchableASPPHead, describe_aspp
from .cells import SearchableCellHead, describe_cells
from .metric import unrounded_evaluators

HEAD_PREFIX = "head."


def dummy_sample(height: int, width: int) -> SegDataSample:
    sample = SegDataSample()
    shape = (height, width)
    sample.set_metainfo({"img_shape": shape, "ori_shape": shape, "pad_shape": shape, "batch_input_shape": shape,
                         "padding_size": [0, 0, 0, 0]})
    return sample


def input_size_of(cfg) -> tuple[int, int]:
    """(H, W) of the cost tables and ONNX: the crop size (the data preprocessor's ``size``, the config's
    ``crop_size``), else the test-time ``Resize`` scale (mmseg scales are (W, H))."""
    size = cfg.model.get("data_preprocessor", {}).get("size") or cfg.get("crop_size")
    if size:
        return int(size[0]), int(size[1])
    for step in cfg.test_dataloader.dataset.get("pipeline", []):
        if step.get("type") == "Resize" and "scale" in step:
            w, h = step["scale"]
            return int(h), int(w)
    raise ValueError("cannot find the crop size (model.data_preprocessor.size or crop_size) or a Resize with `scale` "
                     "in the config's test pipeline; pass --input-size H W")


def features(model: torch.nn.Module, x: torch.Tensor):
    """Backbone and decode head: every searchable part (the auxiliary head does not run at test time)."""
    return model.decode_head(model.extract_feat(x))


class SegmentorLogits(torch.nn.Module):
    """A fixed segmentor as image → per-class logits at the image's size (what ``predict`` arg-maxes)."""

    def __init__(self, segmentor: torch.nn.Module):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.segmentor(x, None, mode="tensor")
        return resize(logits, size=x.shape[2:], mode="bilinear", align_corners=self.segmentor.align_corners)


def onnx_part(subnet: torch.nn.Module, parts) -> tuple[torch.nn.Module, str, Callable[[int], str]]:
    """The whole segmentor (normalised image in, ``seg_logits`` at the input size out)."""
    return SegmentorLogits(subnet), "segmentor.onnx", lambda i: "seg_logits"


def describe(arch) -> str:
    """Backbone letters (3/5/7 = shufflenet k3/k5/k7, x = xception), then the decode head's choices."""
    chosen = dict(arch)
    parts = []
    backbone = tuple(sorted((k, v) for k, v in chosen.items() if not k.startswith(HEAD_PREFIX)))
    if backbone:
        parts.append(arch_letters(backbone))
    if f"{HEAD_PREFIX}image_pool" in chosen:
        parts.append(describe_aspp(chosen, HEAD_PREFIX))
    elif any(k.startswith(f"{HEAD_PREFIX}cell") for k in chosen):
        parts.append(describe_cells(chosen, HEAD_PREFIX))
    return " | ".join(parts)


SEGMENTATION = register_task(Task(
    name="segmentation", scope="mmseg", metric_key="mIoU", metric_label="mIoU",
    searchable={"backbone": ("SearchableShuffleNetBackbone",),
                "decode_head": ("SearchableASPPHead", "SearchableCellHead")},
    dummy_sample=dummy_sample, input_size=input_size_of, onnx_part=onnx_part, features=features,
    search_evaluators=unrounded_evaluators, describe=describe))


_NORM = dict(type="BN", requires_grad=True)


def _quiet(build):
    """``build()`` without mmseg's construction-time advice (binary segmentation, ``build_loss``, ``avg_non_ignore``):
    these heads exist only to read their spaces."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build()


def _aspp() -> SearchableASPPHead:
    return SearchableASPPHead(in_channels=16, channels=16, num_classes=2, norm_cfg=_NORM, in_index=3,
                              low_level_index=(0,), low_level_channels=(8,))


def _cells() -> SearchableCellHead:
    return SearchableCellHead(in_channels=[8, 8, 8, 8], in_index=[0, 1, 2, 3], channels=8, num_classes=2,
                              norm_cfg=_NORM)


# `tasknas spaces`: segmentation's own spaces (the backbones are the core's detnas_shufflenet_* spaces)
SPACES = [
    SpaceEntry("aspp (4 branches, pool, decoder)", "decode_head: SearchableASPPHead (mmseg), alone or with a "
               "backbone", lambda: space_of(_quiet(_aspp))),
    SpaceEntry("decoder cells (3 cells)", "decode_head: SearchableCellHead (mmseg), alone or with a backbone",
               lambda: space_of(_quiet(_cells))),
]
