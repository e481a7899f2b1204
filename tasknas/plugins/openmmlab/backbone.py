"""SearchableShuffleNetBackbone: the DetNAS ShuffleNetV2 supernet (or one fixed subnet of it) as an OpenMMLab backbone.

Registered in mmengine's root ``MODELS``, so mmdet and mmseg configs both build it (``type=
'SearchableShuffleNetBackbone'``): four stage outputs at strides 4, 8, 16 and 32, what FPN necks and
segmentation decode heads read.

With ``arch=None`` the backbone is the supernet of the registered space (``detnas_shufflenet_small``: 20
blocks, C2–C5 widths 64/160/320/640; ``detnas_shufflenet_large``: 40 blocks, 96/240/480/960); the path is
chosen by :class:`~tasknas.plugins.openmmlab.hooks.ArchSamplerHook` during training and by the search.
With ``arch`` (a dict, or the path of an arch JSON file) it is the fixed subnet of that arch: plain
modules with the names ``tasknas.core.fix`` gives them, so a detector exported from the supernet loads
its weights directly.

``key_prefix`` is put in front of every block key (``stage0.block0`` → ``backbone.stage0.block0``): a joint
backbone + neck search sets it so that every key of the arch says which part it belongs to.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ...core import choices_of, create_space, fix, load_arch, make_arch, space_of


@MODELS.register_module()
class SearchableShuffleNetBackbone(BaseModule):
    """DetNAS ShuffleNetV2 backbone; returns the stage outputs listed in ``out_indices`` (0–3 = C2–C5).

    ``norm_eval`` keeps BN layers in eval mode during training (as mmdet's/mmseg's ResNet do for a pre-trained
    backbone). SyncBN is applied the mmengine way: ``sync_bn = 'torch'`` in the config converts every BN,
    those of all options included, when training is distributed.
    """

    def __init__(self, space: str = "detnas_shufflenet_small", out_indices: Sequence[int] = (0, 1, 2, 3),
                 arch: Mapping[str, str] | str | os.PathLike | None = None, norm_eval: bool = False,
                 key_prefix: str = "", init_cfg: dict | list | None = None):
        super().__init__(init_cfg=init_cfg)
        body = create_space(space)
        for choice in choices_of(body):
            choice.key = key_prefix + choice.key
        body.block_keys = [key_prefix + key for key in body.block_keys]  # arch_from_indices gives prefixed keys
        if any(not isinstance(i, int) or not 0 <= i < len(body.stages) for i in out_indices) or not out_indices:
            raise ValueError(f"out_indices {tuple(out_indices)!r} must be a non-empty subset of "
                             f"0..{len(body.stages) - 1} (C2..C5)")
        self.space_name = space
        self.out_indices = tuple(out_indices)
        self.out_channels = tuple(body.out_channels[i] for i in self.out_indices)
        self.norm_eval = norm_eval
        if arch is not None:
            if isinstance(arch, Mapping):
                arch = make_arch(space_of(body), arch)
            else:
                arch = load_arch(arch, space_of(body))
            body = fix(body, arch)
        self.arch = arch
        self.body = body

    def init_weights(self) -> None:
        from ...pretrain.model import check_init_cfg

        check_init_cfg(self.init_cfg, self.space_name)  # a `tasknas pretrain` file of another space: one error
        super().init_weights()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.body.forward_features(x)
        return tuple(feats[i] for i in self.out_indices)

    def train(self, mode: bool = True) -> SearchableShuffleNetBackbone:
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
