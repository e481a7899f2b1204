"""SearchableASPPHead: a DeepLabV3 / DeepLabV3+ decode head whose ASPP and decoder are searched.

Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation" (DeepLabV3, 2017) and
"Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation" (DeepLabV3+, ECCV 2018).
The head runs ``num_branches`` parallel branches and an optional image-pool branch on the backbone output
``in_index``, a 3×3 bottleneck conv-BN-ReLU over their concatenation, optionally the DeepLabV3+ decoder
(a reduced low-level feature concatenated with the upsampled ASPP output, then two depthwise-separable 3×3
conv-BN-ReLU), and ``cls_seg``. Choices (keys after ``key_prefix``, default ``head.``):

* ``aspp{i}`` — branch ``i``: ``"d{r}:{w}"`` a conv-BN-ReLU of dilation ``r`` (``r = 1``: a 1×1 conv, as in
  mmseg's ``ASPPHead``; else 3×3 with padding ``r``) or ``"sep_d{r}:{w}"`` a depthwise-separable one, with
  ``w`` output channels (``branch_widths``);
* ``image_pool`` — ``"off"`` or ``"on:{w}"``: global average pooling → 1×1 conv-BN-ReLU to ``w`` channels;
* ``low_level`` — ``"none"`` (DeepLabV3: the bottleneck output goes to ``cls_seg``) or ``"in{k}:{w}"``: the
  DeepLabV3+ decoder on backbone output ``k`` reduced to ``w`` channels by a 1×1 conv-BN-ReLU.

mmseg's ``ASPPHead(dilations=(1, 12, 24, 36))`` is the arch :func:`mmseg_aspp_arch`; with
:func:`aspp_state_dict_from_mmseg` its weights load into that fixed head, which then gives its outputs.

**Weight sharing and cost.** A branch owns one module per (kernel kind, width) — ``1x1``, ``conv3x3``,
``sep3x3`` — shared by every dilation rate of that kind (a dilation changes where the 3×3 taps read, not
the weights). The bottleneck conv reads the concatenation of the active parts, so its input width depends on
the arch; so the slice of the bottleneck weight that reads a part's channels is owned by that part — by each
(branch, width), shared by the kinds of that branch as any one-shot supernet shares the next layer across a
choice's options (``projects``), and by each image-pool width — and the head runs one conv over the
concatenated parts with the concatenated slices: mmseg's ``ASPPHead`` computation exactly, in its order (image
pool first). Every choice thus decides its own FLOPs and params (a branch: its conv and its bottleneck slice;
the decoder: all of its convs at the low-level resolution), the cost of an arch is a sum over its choices, and
no option leaves a weight unused. The image-pool options own their modules. The decoder shares what follows the
low-level reduction: each ``(source, width)`` owns its 1×1 reduction, the two separable convs are shared by the
sources of one width, and all decoder options share one classifier — apart from the DeepLabV3 classifier
``conv_seg`` of ``"none"``: one classifier reading both the stride-32 ASPP output and decoder outputs does not
train (measured on the shapes set: a supernet sampling ``low_level`` stayed at the all-background loss). A fixed
head (``arch=...`` or :meth:`SearchableASPPHead.fix_arch`) holds only the modules its arch uses, under the
supernet's names; its classifier is ``conv_seg`` either way (a decoder's is moved there).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule, build_activation_layer, build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import nn

from ...core import Choice, load_arch, make_arch, space_of

DILATIONS = (1, 6, 12, 18, 24, 36)
KINDS = ("conv", "sep")


def branch_options(dilations: Sequence[int], widths: Sequence[int], kinds: Sequence[str]) -> tuple[str, ...]:
    """Options of one ASPP branch: ``d{r}:{w}`` / ``sep_d{r}:{w}`` (no separable form of the 1×1 conv)."""
    options = []
    for rate in dilations:
        for kind in kinds:
            if rate == 1 and kind == "sep":
                continue
            options += [f"{'sep_' if kind == 'sep' else ''}d{rate}:{w}" for w in widths]
    return tuple(options)


def parse_branch(option: str) -> tuple[str, int, int]:
    """``"sep_d12:256"`` -> (module kind ``sep3x3``, dilation 12, width 256)."""
    name, width = option.split(":")
    separable = name.startswith("sep_")
    rate = int(name.removeprefix("sep_")[1:])  # "d12" -> 12
    kind = "1x1" if rate == 1 else ("sep3x3" if separable else "conv3x3")
    return kind, rate, int(width)


def parse_low_level(option: str) -> tuple[int, int]:
    """``"in0:48"`` -> (backbone output 0, width 48)."""
    source, width = option.split(":")
    return int(source[2:]), int(width)


def mmseg_aspp_arch(dilations: Sequence[int] = (1, 12, 24, 36), channels: int = 512,
                    prefix: str = "head.") -> dict[str, str]:
    """The arch of mmseg's ``ASPPHead(dilations, channels=channels)``: image pool on, no decoder."""
    arch = {f"{prefix}aspp{i}": f"d{rate}:{channels}" for i, rate in enumerate(dilations)}
    return {**arch, f"{prefix}image_pool": f"on:{channels}", f"{prefix}low_level": "none"}


class ASPPBranch(nn.Module):
    """conv-BN-ReLU: 1×1, 3×3 or depthwise-separable 3×3, its dilation set per call (one module, every rate)."""

    def __init__(self, kind: str, in_channels: int, width: int, conv_cfg, norm_cfg, act_cfg):
        super().__init__()
        self.kind = kind
        if kind == "sep3x3":
            self.conv = DepthwiseSeparableConvModule(in_channels, width, 3, padding=1, norm_cfg=norm_cfg,
                                                     act_cfg=act_cfg)
            self._dilated = [self.conv.depthwise_conv.conv]
        else:
            k = 1 if kind == "1x1" else 3
            self.conv = ConvModule(in_channels, width, k, padding=k // 2, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                                   act_cfg=act_cfg)
            self._dilated = [self.conv.conv] if k == 3 else []

    def set_dilation(self, rate: int) -> None:
        for conv in self._dilated:
            conv.dilation, conv.padding = (rate, rate), (rate, rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PoolBranch(nn.Module):
    """Global average pool → 1×1 conv-BN-ReLU → bilinear resize to the input size; and its bottleneck slice."""

    def __init__(self, in_channels: int, width: int, channels: int, conv_cfg, norm_cfg, act_cfg,
                 align_corners: bool):
        super().__init__()
        self.conv = ConvModule(in_channels, width, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.project = _bottleneck_slice(width, channels)
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(F.adaptive_avg_pool2d(x, 1))
        return resize(pooled, size=x.shape[2:], mode="bilinear", align_corners=self.align_corners)


def sep_bottleneck(channels: int, width: int, norm_cfg: dict, act_cfg: dict | None) -> nn.Sequential:
    """The DeepLabV3+ decoder after the low-level reduction: two depthwise-separable 3×3 conv-BN-ReLU over the
    ASPP output (``channels``) concatenated with the reduced low-level feature (``width``)."""
    return nn.Sequential(
        DepthwiseSeparableConvModule(channels + width, channels, 3, padding=1, norm_cfg=norm_cfg, act_cfg=act_cfg),
        DepthwiseSeparableConvModule(channels, channels, 3, padding=1, norm_cfg=norm_cfg, act_cfg=act_cfg))


class NormAct(nn.Module):
    """The bottleneck's BN and activation, after the conv over the concatenated parts."""

    def __init__(self, channels: int, norm_cfg: dict, act_cfg: dict | None):
        super().__init__()
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.activate = build_activation_layer(act_cfg) if act_cfg is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.norm(x))


def _bottleneck_slice(width: int, channels: int) -> nn.Conv2d:
    """The bottleneck conv's weight over ``width`` input channels (read as ``.weight``; never called itself)."""
    conv = nn.Conv2d(width, channels, 3, padding=1, bias=False)
    # mmcv's ConvModule init of the whole bottleneck conv (Kaiming normal, fan_out = channels * 9 here too)
    nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_out", nonlinearity="relu")
    return conv


@MODELS.register_module()
class SearchableASPPHead(BaseDecodeHead):
    """DeepLabV3/V3+ head with searched ASPP branches, image pool and decoder (``arch=None``: the supernet).

    ``in_channels`` / ``in_index``: the ASPP input (as mmseg's ``ASPPHead``); ``dilations``: the rates a
    branch may take (1 = the 1×1 conv); ``branch_widths`` / ``image_pool_widths``: their widths (default
    ``(channels // 2, channels)``); ``kinds``: ``conv`` and/or ``sep``; ``low_level_index`` /
    ``low_level_channels`` / ``low_level_widths``: the backbone outputs the decoder may read, their channels
    and the widths it may reduce them to (empty: DeepLabV3 only); ``arch``: a dict or arch JSON path with
    this head's keys (the fixed head). Other arguments go to mmseg's ``BaseDecodeHead``.
    """

    def __init__(self, dilations: Sequence[int] = DILATIONS, num_branches: int = 4,
                 branch_widths: Sequence[int] | None = None, image_pool_widths: Sequence[int] | None = None,
                 kinds: Sequence[str] = KINDS, low_level_index: Sequence[int] = (),
                 low_level_channels: Sequence[int] = (), low_level_widths: Sequence[int] = (48,),
                 key_prefix: str = "head.", arch: Mapping[str, str] | str | os.PathLike | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(self.in_channels, int):
            raise ValueError(f"SearchableASPPHead reads one backbone output: in_channels must be an int, "
                             f"got {self.in_channels!r}")
        if self.norm_cfg is None:
            raise ValueError("SearchableASPPHead needs a norm_cfg (its bottleneck conv has no bias, as mmseg's)")
        if not kinds or any(k not in KINDS for k in kinds):
            raise ValueError(f"kinds must be a non-empty subset of {list(KINDS)}, got {list(kinds)}")
        if not dilations or any(not isinstance(r, int) or r < 1 for r in dilations) or len(set(dilations)) != len(
                dilations):
            raise ValueError(f"dilations must be distinct ints >= 1, got {list(dilations)}")
        if not isinstance(num_branches, int) or num_branches < 1:
            raise ValueError(f"num_branches must be an int >= 1, got {num_branches!r}")
        if len(low_level_index) != len(low_level_channels):
            raise ValueError(f"low_level_index {list(low_level_index)} and low_level_channels "
                             f"{list(low_level_channels)} must have the same length")
        default_widths = tuple(sorted({max(1, self.channels // 2), self.channels}))
        branch_widths = tuple(branch_widths or default_widths)
        pool_widths = tuple(image_pool_widths or default_widths)
        for name, widths in (("branch_widths", branch_widths), ("image_pool_widths", pool_widths),
                             ("low_level_widths", tuple(low_level_widths))):
            if any(not isinstance(w, int) or w < 1 for w in widths) or len(set(widths)) != len(widths):
                raise ValueError(f"{name} must be distinct ints >= 1, got {list(widths)}")
        self.key_prefix = key_prefix
        options = branch_options(dilations, branch_widths, kinds)
        choices = {f"aspp{i}": Choice(f"{key_prefix}aspp{i}", options) for i in range(num_branches)}
        choices["image_pool"] = Choice(f"{key_prefix}image_pool", ("off",) + tuple(f"on:{w}" for w in pool_widths))
        choices["low_level"] = Choice(f"{key_prefix}low_level", ("none",) + tuple(
            f"in{k}:{w}" for k in low_level_index for w in low_level_widths))
        self.choices = nn.ModuleDict(choices)
        chosen = None
        if arch is not None:
            chosen = (make_arch(space_of(self), arch) if isinstance(arch, Mapping)
                      else load_arch(arch, space_of(self))).as_dict()
            self._freeze(chosen)
        self.arch = chosen
        cfgs = dict(conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        self.branches = nn.ModuleList()
        self.projects = nn.ModuleList()  # per branch: width -> the bottleneck weight slice reading its channels
        for i in range(num_branches):
            if chosen is None:
                wanted = sorted({(kind, w) for kind, _, w in map(parse_branch, options)})
            else:
                kind, _, w = parse_branch(chosen[f"{key_prefix}aspp{i}"])
                wanted = [(kind, w)]
            self.branches.append(nn.ModuleDict({f"{kind}_{w}": ASPPBranch(kind, self.in_channels, w, **cfgs)
                                                for kind, w in wanted}))
            self.projects.append(nn.ModuleDict({str(w): _bottleneck_slice(w, self.channels)
                                                for w in sorted({w for _, w in wanted})}))
        pool_wanted = [o for o in self.choices["image_pool"].options if o != "off"]
        self.image_pools = nn.ModuleDict({o.split(":")[1]: PoolBranch(self.in_channels, int(o.split(":")[1]),
                                                                      self.channels, **cfgs,
                                                                      align_corners=self.align_corners)
                                          for o in pool_wanted})
        self.bottleneck = NormAct(self.channels, self.norm_cfg, self.act_cfg)
        low_channels = dict(zip(low_level_index, low_level_channels))
        decoder_options = [parse_low_level(o) for o in self.choices["low_level"].options if o != "none"]
        self.low_level_convs = nn.ModuleDict({f"in{k}_{w}": ConvModule(low_channels[k], w, 1, **cfgs)
                                              for k, w in decoder_options})
        self.decoders = nn.ModuleDict({str(w): sep_bottleneck(self.channels, w, self.norm_cfg, self.act_cfg)
                                       for w in sorted({w for _, w in decoder_options})})
        if chosen is None and decoder_options:  # the decoder options' classifier (a fixed head's is conv_seg)
            self.decoder_seg = nn.Conv2d(self.channels, self.out_channels, 1)
            nn.init.normal_(self.decoder_seg.weight, 0, 0.01)  # as BaseDecodeHead initialises conv_seg
            nn.init.zeros_(self.decoder_seg.bias)

    def _forward_feature(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self._transform_inputs(inputs)
        parts, slices = [], []
        pool = self.choices["image_pool"].active
        if pool != "off":
            parts.append(self.image_pools[pool.split(":")[1]])
            slices.append(parts[-1].project.weight)
        for i, ops in enumerate(self.branches):
            kind, rate, width = parse_branch(self.choices[f"aspp{i}"].active)
            parts.append(ops[f"{kind}_{width}"])
            parts[-1].set_dilation(rate)
            slices.append(self.projects[i][str(width)].weight)
        # mmseg's bottleneck conv over the concatenation, its weight assembled from the active parts' slices
        out = F.conv2d(torch.cat([part(x) for part in parts], dim=1), torch.cat(slices, dim=1), padding=1)
        out = self.bottleneck(out)
        low = self.choices["low_level"].active
        if low == "none":
            return out
        k, w = parse_low_level(low)
        reduced = self.low_level_convs[f"in{k}_{w}"](inputs[k])
        out = resize(out, size=reduced.shape[2:], mode="bilinear", align_corners=self.align_corners)
        return self.decoders[str(w)](torch.cat([out, reduced], dim=1))

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        feat = self._forward_feature(inputs)
        if self.arch is not None or self.choices["low_level"].active == "none":
            return self.cls_seg(feat)
        return self.decoder_seg(feat if self.dropout is None else self.dropout(feat))

    def _option_dicts(self) -> list[nn.ModuleDict]:
        return [*self.branches, *self.projects, self.image_pools, self.low_level_convs, self.decoders]

    def _used_options(self, chosen: Mapping[str, str]) -> set[int]:
        """The ids of the option modules (branch convs, bottleneck slices, image pool, decoder) ``chosen`` runs."""
        used = []
        for i, (ops, projects) in enumerate(zip(self.branches, self.projects)):
            kind, _, width = parse_branch(chosen[f"{self.key_prefix}aspp{i}"])
            used += [ops[f"{kind}_{width}"], projects[str(width)]]
        pool = chosen[f"{self.key_prefix}image_pool"]
        if pool != "off":
            used.append(self.image_pools[pool.split(":")[1]])
        low = chosen[f"{self.key_prefix}low_level"]
        if low != "none":
            k, w = parse_low_level(low)
            used += [self.low_level_convs[f"in{k}_{w}"], self.decoders[str(w)]]
        return {id(m) for m in used}

    def _freeze(self, chosen: Mapping[str, str]) -> None:
        """Every choice becomes a single-option choice fixed to its value in ``chosen`` (as tasknas.core.fix does)."""
        for name, choice in self.choices.items():
            fixed = Choice(choice.key, (chosen[choice.key],))
            fixed.activate(chosen[choice.key])
            self.choices[name] = fixed
        self.arch = dict(chosen)

    def fix_arch(self, chosen: Mapping[str, str]) -> SearchableASPPHead:
        """The fixed head of ``chosen`` (this head's keys are read from it) holding copies of the weights it uses,
        under the names the head built with ``arch=`` has; the options off the arch are not copied."""
        own = make_arch(space_of(self), {key: chosen[key] for key in space_of(self)}).as_dict()
        used = self._used_options(own)
        memo = {id(m): None for d in self._option_dicts() for m in d.values() if id(m) not in used}
        decoder = own[f"{self.key_prefix}low_level"] != "none"
        if self.arch is None and hasattr(self, "decoder_seg"):  # keep only the classifier the arch uses
            memo[id(self.conv_seg if decoder else self.decoder_seg)] = None
        fixed = copy.deepcopy(self, memo)
        for options in fixed._option_dicts():
            for name in [n for n, m in options.items() if m is None]:
                del options[name]
        if hasattr(fixed, "decoder_seg"):
            if decoder:
                fixed.conv_seg = fixed.decoder_seg
            del fixed.decoder_seg
        fixed._freeze(own)
        return fixed


def aspp_state_dict_from_mmseg(state: Mapping[str, torch.Tensor], dilations: Sequence[int],
                               channels: int) -> dict[str, torch.Tensor]:
    """mmseg ``ASPPHead`` weights under the names of the fixed head of :func:`mmseg_aspp_arch`: the bottleneck
    conv is split into the slices the image pool and the branches carry (in mmseg's concatenation order)."""
    out: dict[str, torch.Tensor] = {}
    bottleneck = state["bottleneck.conv.weight"]
    if bottleneck.shape[1] != (len(dilations) + 1) * channels:
        raise ValueError(f"the bottleneck conv has {bottleneck.shape[1]} input channels; an ASPPHead with "
                         f"dilations {list(dilations)} and channels {channels} has {(len(dilations) + 1) * channels}")
    out[f"image_pools.{channels}.project.weight"] = bottleneck[:, :channels]
    for i, rate in enumerate(dilations):
        kind = "1x1" if rate == 1 else "conv3x3"
        out[f"projects.{i}.{channels}.weight"] = bottleneck[:, (i + 1) * channels:(i + 2) * channels]
    for name, tensor in state.items():
        if name == "bottleneck.conv.weight":
            continue
        if name.startswith("image_pool.1."):
            out[f"image_pools.{channels}.conv." + name[len("image_pool.1."):]] = tensor
        elif name.startswith("aspp_modules."):
            i, rest = name[len("aspp_modules."):].split(".", 1)
            kind = "1x1" if dilations[int(i)] == 1 else "conv3x3"
            out[f"branches.{i}.{kind}_{channels}.conv.{rest}"] = tensor
        elif name.startswith("bottleneck."):  # bottleneck.bn.weight (or .gn. ...) -> bottleneck.norm.weight
            out["bottleneck.norm." + name.split(".", 2)[2]] = tensor
        else:
            out[name] = tensor
    return out


def describe_aspp(arch, prefix: str = "head.") -> str:
    """``aspp d1:256 d12:256 sep_d24:128 d36:256 | pool on:256 | decoder in0:48``."""
    chosen = dict(arch)
    branches = sorted((k for k in chosen if k.startswith(f"{prefix}aspp")), key=lambda k: int(k[len(prefix) + 4:]))
    return (f"aspp {' '.join(str(chosen[k]) for k in branches)} | pool {chosen[f'{prefix}image_pool']} | "
            f"decoder {chosen[f'{prefix}low_level']}")
