"""DetNAS / SPOS ShuffleNetV2 supernet.

Chen et al., "DetNAS: Backbone Search for Object Detection" (NeurIPS 2019), on the choice block of
Guo et al., "Single Path One-Shot NAS" (ECCV 2020). Every block is a choice among four options:

* ``k3`` / ``k5`` / ``k7`` — ShuffleNetV2 unit: 1×1 conv-BN-ReLU → k×k depthwise-BN → 1×1 conv-BN-ReLU on
  half of the channels;
* ``xception`` — three × [3×3 depthwise-BN → 1×1 conv-BN-ReLU].

Stride-1 blocks channel-shuffle the input and split it in two halves; one half passes through
unchanged, the other through the main branch. Stride-2 blocks (the first of each stage) feed the
whole input to the main branch and to a projection branch (k×k depthwise-BN → 1×1 conv-BN-ReLU, k = 3
for ``xception``); the outputs are concatenated.

Spaces: ``detnas_shufflenet_small`` (20 blocks, repeats 4/4/8/4, stem 16, widths 64/160/320/640; the
300M-class space) and ``detnas_shufflenet_large`` (40 blocks, 8/8/16/8, stem 48, widths 96/240/480/960;
the 1.3G-class space). ``forward_features`` returns the four stage outputs C2–C5 at strides 4, 8, 16
and 32 of the input. The published DetNAS FPN-300M arch is ``DETNAS_FPN_300M`` (load it with
``arch_from_indices``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..arch import Arch, make_arch, space_of
from ..choice import Choice
from ..registry import register_space

OPTIONS = ("k3", "k5", "k7", "xception")
# DetNAS's published FPN-300M backbone (0=k3, 1=k5, 2=k7, 3=xception), in block order; 36.6 AP on COCO minival.
DETNAS_FPN_300M = (2, 1, 2, 0, 2, 1, 1, 2, 3, 3, 1, 3, 0, 0, 3, 1, 3, 1, 3, 2)


def arch_letters(arch: Arch) -> str:
    """One letter per block: 3/5/7 = shufflenet k3/k5/k7, x = xception (in key order)."""
    return "".join("x" if option == "xception" else str(option)[1:] for _, option in arch)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, depthwise: bool = False,
             relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=cin if depthwise else 1, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class ShuffleBlock(nn.Module):
    """One option of a choice block: a ShuffleNetV2 unit (``kernel`` 3/5/7) or the Xception variant
    (``kernel=None``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel: int | None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"a stride-1 block keeps its width; got {in_channels} -> {out_channels}")
        if in_channels % 2 or out_channels % 2:
            raise ValueError(f"block widths must be even (channel split), got {in_channels} -> {out_channels}")
        self.stride = stride
        main_in = in_channels // 2 if stride == 1 else in_channels
        passthrough = in_channels // 2 if stride == 1 else in_channels
        main_out = out_channels - passthrough
        if main_out <= 0:
            raise ValueError(f"block {in_channels} -> {out_channels} leaves no channels for the main branch")
        mid = out_channels // 2
        if kernel is None:
            layers = (_conv_bn(main_in, main_in, 3, stride, depthwise=True, relu=False) + _conv_bn(main_in, mid, 1)
                      + _conv_bn(mid, mid, 3, 1, depthwise=True, relu=False) + _conv_bn(mid, mid, 1)
                      + _conv_bn(mid, mid, 3, 1, depthwise=True, relu=False) + _conv_bn(mid, main_out, 1))
        else:
            layers = (_conv_bn(main_in, mid, 1) + _conv_bn(mid, mid, kernel, stride, depthwise=True, relu=False)
                      + _conv_bn(mid, main_out, 1))
        self.main = nn.Sequential(*layers)
        if stride == 2:
            k = 3 if kernel is None else kernel
            self.proj = nn.Sequential(*_conv_bn(in_channels, in_channels, k, 2, depthwise=True, relu=False),
                                      *_conv_bn(in_channels, in_channels, 1))
        else:
            self.proj = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            # Channel shuffle + split: even channels pass through, odd channels go through the main branch.
            return torch.cat((x[:, 0::2], self.main(x[:, 1::2])), dim=1)
        return torch.cat((self.proj(x), self.main(x)), dim=1)


def choice_block(key: str, in_channels: int, out_channels: int, stride: int) -> Choice:
    kernels = {"k3": 3, "k5": 5, "k7": 7, "xception": None}
    return Choice(key, {name: ShuffleBlock(in_channels, out_channels, stride, kernels[name]) for name in OPTIONS})


class ShuffleNetSupernet(nn.Module):
    """ShuffleNetV2 supernet with one choice per block.

    ``forward_features(x)`` returns the four stage outputs; with ``num_classes > 0`` ``forward(x)`` adds a
    1×1 conv-BN-ReLU to ``last_channels``, global average pooling and a linear classifier (the ImageNet
    pre-training head of SPOS/DetNAS), otherwise ``forward`` is ``forward_features``.
    Block keys are ``stage{i}.block{j}``; ``block_keys`` lists them in network order.
    """

    def __init__(self, stem_channels: int, widths: Sequence[int], repeats: Sequence[int], num_classes: int = 0,
                 in_channels: int = 3, last_channels: int = 1024):
        super().__init__()
        if len(widths) != len(repeats) or not widths:
            raise ValueError(f"widths {list(widths)} and repeats {list(repeats)} must be non-empty and of equal length")
        if any(r < 1 for r in repeats):
            raise ValueError(f"every stage needs at least one block, got repeats {list(repeats)}")
        self.stem = nn.Sequential(*_conv_bn(in_channels, stem_channels, 3, 2))  # no max-pool, as in SPOS/DetNAS
        self.stages = nn.ModuleList()
        self.block_keys: list[str] = []
        self.out_channels = tuple(widths)
        cin = stem_channels
        for i, (width, repeat) in enumerate(zip(widths, repeats)):
            blocks = []
            for j in range(repeat):
                key = f"stage{i}.block{j}"
                blocks.append(choice_block(key, cin, width, 2 if j == 0 else 1))
                self.block_keys.append(key)
                cin = width
            self.stages.append(nn.Sequential(*blocks))
        self.num_classes = num_classes
        if num_classes > 0:
            self.head = nn.Sequential(*_conv_bn(cin, last_channels, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(last_channels, num_classes))
        else:
            self.head = None

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor):
        feats = self.forward_features(x)
        return self.head(feats[-1]) if self.head is not None else feats

    def arch_from_indices(self, indices: Sequence[int]) -> Arch:
        """The arch of a published index vector (0=k3, 1=k5, 2=k7, 3=xception, in block order)."""
        if len(indices) != len(self.block_keys):
            raise ValueError(f"arch vector has {len(indices)} entries; this space has {len(self.block_keys)} blocks")
        bad = [(i, v) for i, v in enumerate(indices) if not isinstance(v, int) or not 0 <= v < len(OPTIONS)]
        if bad:
            raise ValueError(f"arch vector entries {bad} (position, value) are not in 0..{len(OPTIONS) - 1} "
                             f"(0=k3, 1=k5, 2=k7, 3=xception)")
        return make_arch(space_of(self), {k: OPTIONS[v] for k, v in zip(self.block_keys, indices)})

    def arch_to_indices(self, arch: Arch) -> list[int]:
        mapping = make_arch(space_of(self), arch).as_dict()
        return [OPTIONS.index(mapping[k]) for k in self.block_keys]


@register_space
def detnas_shufflenet_small(num_classes: int = 0, in_channels: int = 3) -> ShuffleNetSupernet:
    """DetNAS 300M-class space: 20 blocks (4/4/8/4), stem 16, widths 64/160/320/640."""
    return ShuffleNetSupernet(16, (64, 160, 320, 640), (4, 4, 8, 4), num_classes, in_channels)


@register_space
def detnas_shufflenet_large(num_classes: int = 0, in_channels: int = 3) -> ShuffleNetSupernet:
    """DetNAS 1.3G-class space: 40 blocks (8/8/16/8), stem 48, widths 96/240/480/960."""
    return ShuffleNetSupernet(48, (96, 240, 480, 960), (8, 8, 16, 8), num_classes, in_channels)


@register_space
def detnas_shufflenet_demo(num_classes: int = 0, in_channels: int = 3) -> ShuffleNetSupernet:
    """CPU demo variant (not from the paper): the small layout at half depth (2/2/4/2 = 10 blocks), stem 16,
    widths 32/64/128/256. At the full 20 blocks, uniform path sampling needs far more iterations than a few
    CPU minutes allow before the loss leaves chance level (measured on the demo's shapes data)."""
    return ShuffleNetSupernet(16, (32, 64, 128, 256), (2, 2, 4, 2), num_classes, in_channels, last_channels=256)
