"""SearchableNASFPN: the NAS-FPN merging-cell space (Ghiasi, Lin, Le, CVPR 2019) as an mmdet neck.

A stage is a sequence of ``num_cells`` merging cells over a growing pool of feature maps. The pool starts
as P3–P7 (lateral 1×1 convs of C3–C5; P6 and P7 by a 1×1 conv and a stride-2 max-pool of the level below,
as mmdet's ``NASFPN`` builds them) and every cell appends its output. Cell ``j`` chooses

* ``cell{j}.input1`` / ``cell{j}.input2`` — two members of the pool (``P3``…``P7``, ``c0``…``c{j-1}``);
* ``cell{j}.op`` — ``sum`` (``x1 + x2``) or ``gp``, global-pool attention ``x2 + sigmoid(GAP(x2))·x1``;
* ``cell{j}.level`` — its output level (cells before the last ``num_outs``), or, for the last ``num_outs``
  cells, which of them produces which output level: the one choice ``outputs``, a permutation such as
  ``"P3,P4,P5,P7,P6"`` (those cells, in order, produce P3, P4, P5, P7, P6).

Both inputs are resized to the output level (nearest upsampling, or max-pooling by the size ratio), merged,
and — for an output cell — summed with every pool member of the same level that no cell has consumed yet
(the paper's rule that keeps every feature connected); then ReLU → 3×3 conv → BN. The stage is stacked
``stack_times`` times with one shared arch and separate weights; the last ``num_outs`` cells give P3–P7.

**Weight sharing.** The choices of a cell are parameter-free (which tensors to read, how to resize and
merge them, at which resolution to write), so each cell of each stacked stage owns exactly one
ReLU → 3×3 conv → BN, and every arch of the space runs through those same weights: the supernet has the
parameters of any one subnet, every arch is trainable in it, and a fixed subnet has the same tensors
(only the choices are frozen). The shared BN sees features of whatever level and inputs the sampled arch
gives the cell, which is why the search recalibrates BN statistics per candidate.

The published NAS-FPN (7 cells, the fixed stage of mmdet's ``NASFPN``) is :func:`nasfpn_published_arch`;
with it this neck has the wiring, parameter names' layout and parameter count of mmdet's ``NASFPN``.
"""
from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from ...core import Choice, load_arch, make_arch, space_of

OPS = ("sum", "gp")


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest upsampling to ``size``, or max-pooling by the size ratio (zero-padded to a multiple first)."""
    # Plain ints: the sizes are static, and ONNX export needs constant pooling kernels.
    h, w, size = int(x.shape[-2]), int(x.shape[-1]), (int(size[0]), int(size[1]))
    if (h, w) == size:
        return x
    if h <= size[0] and w <= size[1]:
        return F.interpolate(x, size=size, mode="nearest")
    ph, pw = math.ceil(h / size[0]) * size[0] - h, math.ceil(w / size[1]) * size[1] - w
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
    kernel = ((h + ph) // size[0], (w + pw) // size[1])
    return F.max_pool2d(x, kernel_size=kernel, stride=kernel)


def nasfpn_published_arch(prefix: str = "neck.") -> dict[str, str]:
    """The NAS-FPN architecture of the paper (7 cells), as mmdet's ``NASFPN`` wires it."""
    cells = [("P6", "P4", "gp", "P4"), ("c0", "P4", "sum", "P4"), ("c1", "P3", "sum", None),
             ("c2", "c1", "sum", None), ("c3", "c2", "gp", None), ("c4", "c1", "gp", None), ("c5", "c4", "gp", None)]
    arch = {f"{prefix}outputs": "P3,P4,P5,P7,P6"}
    for j, (a, b, op, level) in enumerate(cells):
        arch.update({f"{prefix}cell{j}.input1": a, f"{prefix}cell{j}.input2": b, f"{prefix}cell{j}.op": op})
        if level is not None:
            arch[f"{prefix}cell{j}.level"] = level
    return arch


@MODELS.register_module()
class SearchableNASFPN(BaseModule):
    """NAS-FPN neck whose merging cells are searched (``arch=None``: the supernet) or fixed (``arch``).

    Arguments as mmdet's ``NASFPN`` plus ``num_cells`` (cells per stage, ≥ ``num_outs``), ``min_level``
    (the level of the first output, for the pool's names), ``key_prefix`` (of every choice key) and
    ``arch`` (a dict or arch JSON path with this neck's keys: the fixed subnet).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int = 5, stack_times: int = 7,
                 num_cells: int = 7, start_level: int = 0, end_level: int = -1, norm_cfg: dict | None = None,
                 min_level: int = 3, key_prefix: str = "neck.",
                 arch: Mapping[str, str] | str | os.PathLike | None = None,
                 init_cfg: dict | list | None = None):
        # mmdet NASFPN's initialisation unless the config gives one
        super().__init__(init_cfg=init_cfg if init_cfg is not None else dict(type="Caffe2Xavier", layer="Conv2d"))
        in_channels = list(in_channels)
        end = len(in_channels) if end_level in (-1, len(in_channels) - 1) else end_level + 1
        if not 0 <= start_level < end <= len(in_channels):
            raise ValueError(f"start_level {start_level} / end_level {end_level} do not fit {len(in_channels)} inputs")
        extra = num_outs - (end - start_level)
        if extra < 0 or (extra > 0 and end != len(in_channels)):
            raise ValueError(f"num_outs {num_outs} must be at least the {end - start_level} backbone levels used "
                             "(extra levels only on top of the last one)")
        if num_cells < num_outs:
            raise ValueError(f"num_cells {num_cells} must be at least num_outs {num_outs} (the last cells are outputs)")
        if stack_times < 1:
            raise ValueError(f"stack_times must be at least 1, got {stack_times}")
        self.start_level, self.num_outs, self.num_cells = start_level, num_outs, num_cells
        self.levels = tuple(f"P{min_level + i}" for i in range(num_outs))
        self.lateral_convs = nn.ModuleList(
            ConvModule(in_channels[i], out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
            for i in range(start_level, end))
        self.extra_downsamples = nn.ModuleList(
            nn.Sequential(ConvModule(out_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None),
                          nn.MaxPool2d(2, 2)) for _ in range(extra))
        with warnings.catch_warnings():  # a conv bias before BN, as mmdet's NASFPN has (same parameter count)
            warnings.filterwarnings("ignore", "Unnecessary conv bias")
            self.fpn_stages = nn.ModuleList(
                nn.ModuleList(ConvModule(out_channels, out_channels, 3, padding=1, bias=True, norm_cfg=norm_cfg,
                                         order=("act", "conv", "norm")) for _ in range(num_cells))
                for _ in range(stack_times))
        first_output = num_cells - num_outs
        choices = {"outputs": Choice(f"{key_prefix}outputs",
                                     tuple(",".join(p) for p in itertools.permutations(self.levels)))}
        for j in range(num_cells):
            pool = self.levels + tuple(f"c{i}" for i in range(j))
            choices[f"cell{j}_input1"] = Choice(f"{key_prefix}cell{j}.input1", pool)
            choices[f"cell{j}_input2"] = Choice(f"{key_prefix}cell{j}.input2", pool)
            choices[f"cell{j}_op"] = Choice(f"{key_prefix}cell{j}.op", OPS)
            if j < first_output:
                choices[f"cell{j}_level"] = Choice(f"{key_prefix}cell{j}.level", self.levels)
        self.choices = nn.ModuleDict(choices)
        self.arch = None
        if arch is not None:
            self.arch = (make_arch(space_of(self), arch) if isinstance(arch, Mapping)
                         else load_arch(arch, space_of(self)))
            for choice in self.choices.values():  # frozen: one option each, as tasknas.core.fix leaves them
                option = self.arch[choice.key]
                fixed = Choice(choice.key, (option,))
                fixed.activate(option)
                self.choices[_name_of(choice.key, key_prefix)] = fixed

    def _plan(self) -> list[tuple[int, int, str, str, bool]]:
        """``(input1, input2, op, level, is_output)`` of every cell, as pool indices and level names."""
        names = list(self.levels)
        outputs = self.choices["outputs"].active.split(",")
        plan = []
        for j in range(self.num_cells):
            is_output = j >= self.num_cells - self.num_outs
            if is_output:
                level = outputs[j - (self.num_cells - self.num_outs)]
            else:
                level = self.choices[f"cell{j}_level"].active
            a = names.index(self.choices[f"cell{j}_input1"].active)
            b = names.index(self.choices[f"cell{j}_input2"].active)
            plan.append((a, b, self.choices[f"cell{j}_op"].active, level, is_output))
            names.append(f"c{j}")
        return plan

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        feats = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        for downsample in self.extra_downsamples:
            feats.append(downsample(feats[-1]))
        sizes = {level: f.shape[-2:] for level, f in zip(self.levels, feats)}
        plan = self._plan()
        for stage in self.fpn_stages:
            pool, pool_levels = list(feats), list(self.levels)
            consumed = [False] * len(pool)
            outputs = {}
            for conv, (a, b, op, level, is_output) in zip(stage, plan):
                x1, x2 = resize(pool[a], sizes[level]), resize(pool[b], sizes[level])
                consumed[a] = consumed[b] = True
                x = x1 + x2 if op == "sum" else x2 + F.adaptive_avg_pool2d(x2, 1).sigmoid() * x1
                if is_output:
                    for i, (feat, feat_level) in enumerate(zip(pool, pool_levels)):
                        if not consumed[i] and feat_level == level:
                            x = x + feat
                            consumed[i] = True
                x = conv(x)
                pool.append(x)
                pool_levels.append(level)
                consumed.append(False)
                if is_output:
                    outputs[level] = x
            feats = [outputs[level] for level in self.levels]
        return tuple(feats)


def _name_of(key: str, prefix: str) -> str:
    return key[len(prefix):].replace(".", "_")


def describe_nasfpn(arch, prefix: str = "neck.") -> str:
    """One line per arch: ``c0=gp(P6,P4)>P4 c1=sum(c0,P4)>P4 ...`` (cell = op(input1,input2)>output level)."""
    chosen = dict(arch)
    outputs = chosen[f"{prefix}outputs"].split(",")
    cells = sorted({int(k[len(prefix) + 4:].split(".")[0]) for k in chosen if k.startswith(f"{prefix}cell")})
    first_output = len(cells) - len(outputs)
    parts = []
    for j in cells:
        level = outputs[j - first_output] if j >= first_output else chosen[f"{prefix}cell{j}.level"]
        parts.append(f"c{j}={chosen[f'{prefix}cell{j}.op']}({chosen[f'{prefix}cell{j}.input1']},"
                     f"{chosen[f'{prefix}cell{j}.input2']})>{level}")
    return " ".join(parts)
