"""SearchableCellHead: the decoder-cell space of Nekrasov et al., "Fast Neural Architecture Search of Compact
Semantic Segmentation Models via Auxiliary Cells" (CVPR 2019), as an mmseg decode head on a fixed encoder.

The backbone outputs ``in_index`` are each reduced to ``channels`` by a 1×1 conv-BN-ReLU and resized
(bilinear) to the resolution of backbone output ``in_index[cell_index]``: they start the pool ``in0``,
``in1``, …. Then ``num_cells`` merge cells run in order; cell ``j`` appends its output ``c{j}`` to the pool.
Cell ``j`` chooses (keys after ``key_prefix``, default ``head.``):

* ``cell{j}.input1`` / ``cell{j}.input2`` — two members of the pool (``in0``…, ``c0``…``c{j-1}``; the same
  one twice is allowed);
* ``cell{j}.op1`` / ``cell{j}.op2`` — the op applied to each input, from the paper's set without the zero op:
  ``conv1x1``, ``conv3x3``, ``sep3x3``, ``sep5x5``, ``gap`` (global average pool → 1×1 conv → upsample),
  ``conv3x3_r3``, ``conv3x3_r12`` (dilated), ``sep3x3_r3``, ``sep5x5_r6`` (separable dilated), ``skip``.

A cell's output is the sum of its two op outputs. The head's output is the sum of every pool member no cell
read (the reduced backbone outputs included), then a 3×3 conv-BN-ReLU and ``cls_seg``: nothing a cell
computes is dropped, so no subnet holds an unused weight. The auxiliary cells of the paper are a training
device, not part of the searched space.

**Single path and cost.** Each op is its own module (a module choice: options off the path get no
gradient); input choices only say which tensor a cell reads. Every op runs on ``channels`` channels at the
one cell resolution whichever input it reads, so its cost is its own and an arch's cost is a sum over its
choices (inputs cost nothing: resizing and summing are not multiply-adds).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import nn

from ...core import Choice, load_arch, make_arch

OPS = ("conv1x1", "conv3x3", "sep3x3", "sep5x5", "gap", "conv3x3_r3", "conv3x3_r12", "sep3x3_r3", "sep5x5_r6",
       "skip")


class GlobalPoolConv(nn.Module):
    """Global average pool → 1×1 conv-BN-ReLU → bilinear upsampling to the input size."""

    def __init__(self, channels: int, conv_cfg, norm_cfg, act_cfg, align_corners: bool):
        super().__init__()
        self.conv = ConvModule(channels, channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(self.conv(F.adaptive_avg_pool2d(x, 1)), size=x.shape[2:], mode="bilinear",
                      align_corners=self.align_corners)


def build_op(name: str, channels: int, conv_cfg, norm_cfg, act_cfg, align_corners: bool) -> nn.Module:
    """The module of op ``name`` (one of :data:`OPS`) on ``channels`` channels, keeping the spatial size."""
    if name == "skip":
        return nn.Identity()
    if name == "gap":
        return GlobalPoolConv(channels, conv_cfg, norm_cfg, act_cfg, align_corners)
    kind, _, rate = name.partition("_r")
    dilation = int(rate) if rate else 1
    kernel = int(kind[-3])  # conv1x1 -> 1, sep5x5 -> 5
    padding = dilation * (kernel // 2)
    if kind.startswith("sep"):
        return DepthwiseSeparableConvModule(channels, channels, kernel, padding=padding, dilation=dilation,
                                            norm_cfg=norm_cfg, act_cfg=act_cfg)
    return ConvModule(channels, channels, kernel, padding=padding, dilation=dilation, conv_cfg=conv_cfg,
                      norm_cfg=norm_cfg, act_cfg=act_cfg)


@MODELS.register_module()
class SearchableCellHead(BaseDecodeHead):
    """Decode head of ``num_cells`` searched merge cells (``arch=None``: the supernet; ``arch``: fixed).

    ``in_channels`` / ``in_index``: the backbone outputs the pool starts with (sequences of equal length);
    ``cell_index``: which of them sets the cells' resolution; ``ops``: the op set (default :data:`OPS`).
    Other arguments go to mmseg's ``BaseDecodeHead`` (``input_transform`` is ``'multiple_select'``).
    """

    def __init__(self, in_channels: Sequence[int], in_index: Sequence[int], num_cells: int = 3, cell_index: int = 0,
                 ops: Sequence[str] = OPS, key_prefix: str = "head.",
                 arch: Mapping[str, str] | str | os.PathLike | None = None, **kwargs):
        if "input_transform" in kwargs:
            raise ValueError("SearchableCellHead selects its inputs itself; do not set input_transform")
        super().__init__(in_channels=list(in_channels), in_index=list(in_index), input_transform="multiple_select",
                         **kwargs)
        if not isinstance(num_cells, int) or num_cells < 1:
            raise ValueError(f"num_cells must be an int >= 1, got {num_cells!r}")
        if not isinstance(cell_index, int) or not 0 <= cell_index < len(self.in_channels):
            raise ValueError(f"cell_index {cell_index!r} must index in_index {list(in_index)}")
        if not ops or any(o not in OPS for o in ops) or len(set(ops)) != len(ops):
            raise ValueError(f"ops must be distinct names from {list(OPS)}, got {list(ops)}")
        self.num_cells, self.cell_index = num_cells, cell_index
        cfgs = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.lateral_convs = nn.ModuleList(ConvModule(c, self.channels, 1, **cfgs) for c in self.in_channels)
        self.pool_names = tuple(f"in{i}" for i in range(len(self.in_channels)))
        chosen = None
        if arch is not None:
            space = {f"{key_prefix}cell{j}.{p}": options for j in range(num_cells)
                     for p, options in (("input1", self._pool(j)), ("input2", self._pool(j)), ("op1", tuple(ops)),
                                        ("op2", tuple(ops)))}
            chosen = (make_arch(space, arch) if isinstance(arch, Mapping) else load_arch(arch, space)).as_dict()
        self.arch = chosen
        self.cells = nn.ModuleList()
        for j in range(num_cells):
            cell = nn.ModuleDict()
            for p in ("input1", "input2"):
                key = f"{key_prefix}cell{j}.{p}"
                options = self._pool(j) if chosen is None else (chosen[key],)
                cell[p] = Choice(key, options)
                if chosen is not None:
                    cell[p].activate(chosen[key])
            for p in ("op1", "op2"):
                key = f"{key_prefix}cell{j}.{p}"
                if chosen is None:
                    cell[p] = Choice(key, {o: build_op(o, self.channels, **cfgs, align_corners=self.align_corners)
                                           for o in ops})
                else:  # the chosen op itself, named as tasknas.core.fix names it
                    cell[p] = build_op(chosen[key], self.channels, **cfgs, align_corners=self.align_corners)
            self.cells.append(cell)
        self.fuse = ConvModule(self.channels, self.channels, 3, padding=1, **cfgs)

    def _pool(self, j: int) -> tuple[str, ...]:
        return self.pool_names + tuple(f"c{i}" for i in range(j))

    def _forward_feature(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        feats = self._transform_inputs(inputs)
        size = feats[self.cell_index].shape[2:]
        pool = [resize(conv(x), size=size, mode="bilinear", align_corners=self.align_corners)
                if x.shape[2:] != size else conv(x) for conv, x in zip(self.lateral_convs, feats)]
        names = list(self.pool_names)
        read = [False] * len(pool)
        for cell in self.cells:
            a, b = names.index(cell["input1"].active), names.index(cell["input2"].active)
            read[a] = read[b] = True
            pool.append(cell["op1"](pool[a]) + cell["op2"](pool[b]))
            names.append(f"c{len(names) - len(self.pool_names)}")
            read.append(False)
        out = None
        for x, was_read in zip(pool, read):
            if not was_read:
                out = x if out is None else out + x
        return self.fuse(out)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self._forward_feature(inputs))


def describe_cells(arch, prefix: str = "head.") -> str:
    """``c0=sep3x3(in1)+skip(in0) c1=...`` (each cell: op1(input1) + op2(input2))."""
    chosen = dict(arch)
    cells = sorted({int(k[len(prefix) + 4:].split(".")[0]) for k in chosen if k.startswith(f"{prefix}cell")})
    return " ".join(f"c{j}={chosen[f'{prefix}cell{j}.op1']}({chosen[f'{prefix}cell{j}.input1']})+"
                    f"{chosen[f'{prefix}cell{j}.op2']}({chosen[f'{prefix}cell{j}.input2']})" for j in cells)
