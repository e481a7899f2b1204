"""SearchableBiFPN: the BiFPN of EfficientDet (Tan, Pang, Le, CVPR 2020) with its topology searched.

Levels P3–P7: C3–C5 from the backbone, P6 = max-pool(1×1 conv-BN(C5)), P7 = max-pool(P6) (3×3, stride 2,
"same" padding). A layer has a top-down path (nodes ``P6_td``…``P4_td`` and ``P3_out``) and a bottom-up
path (``P4_out``…``P7_out``); a node fuses its inputs, then swish → depthwise-separable 3×3 conv → BN.
In the first layer the backbone levels enter through 1×1 conv-BN blocks, a separate one for the
bottom-up path (as EfficientDet does).

Searchable, per node and layer (key ``layer{i}.{node}``): which of its candidate inputs are kept and how
they are fused. Candidates are ``same`` (the layer's input at that level), ``up`` (the level above,
upsampled: the top-down path), ``td`` (the top-down node of the level) and ``down`` (the level below,
max-pooled: the bottom-up path). Every node of a subnet feeds its output — no dead branch, so a fixed
subnet trains without unused weights and its cost is a sum over its choices — because one input per node
is kept in every option: ``td`` in the middle bottom-up nodes (their level's top-down node is read by
nothing else) and, in layers after the first, ``same`` in the top-down nodes and the top bottom-up node
(they carry the previous layer's outputs forward). Fusion of several inputs: ``fast`` — fast normalized fusion
``O = Σ wᵢ/(ε + Σ wⱼ)·Iᵢ`` with ``wᵢ = ReLU(wᵢ)``, ε = 1e-4 — ``softmax`` (``wᵢ`` softmax-normalized) or
``sum`` (no weights). An option reads ``"same+up:fast"``; a single input reads ``"up"``. The number of
layers is the choice ``depth``; the choices of layer ``i ≥ 1`` are gated by it.

**Weight sharing.** Every node owns one separable conv + BN, used by all its options, and one scalar
fusion weight per candidate input, used by the options that keep that input with a weighted fusion; layer
``i`` exists once and is used by every depth above ``i``. A fixed subnet (``arch=...``) holds only what its
arch uses — dropped layers, unused fusion weights and unused first-layer 1×1 blocks are not built — under
the supernet's names, so the supernet's tensors load into it directly (:meth:`SearchableBiFPN.fix_arch`).

The EfficientDet-D0 BiFPN is :func:`bifpn_d0_arch` with 64 channels, 3 layers.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from itertools import combinations

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from ...core import Choice, load_arch, make_arch, space_of

FUSIONS = ("fast", "softmax", "sum")
EPS = 1e-4


def node_options(candidates: Sequence[str], required: str | None, fusions: Sequence[str]) -> tuple[str, ...]:
    """Options of a node: every subset of ``candidates`` (in order) holding ``required``; weighted subsets
    of two or more inputs once per fusion rule."""
    options = []
    for n in range(1, len(candidates) + 1):
        for kept in combinations(candidates, n):
            if required is not None and required not in kept:
                continue
            options.extend(["+".join(kept)] if n == 1 else [f"{'+'.join(kept)}:{f}" for f in fusions])
    return tuple(options)


def parse_option(option: str) -> tuple[tuple[str, ...], str | None]:
    kept, _, fusion = option.partition(":")
    return tuple(kept.split("+")), fusion or None


def maxpool_same(x: torch.Tensor) -> torch.Tensor:
    """3×3 max-pool, stride 2, TensorFlow "same" padding (the padding never wins the max)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class SeparableConvBN(nn.Module):
    """swish → depthwise 3×3 (no bias) → pointwise 1×1 → BN."""

    def __init__(self, channels: int, norm_cfg: dict):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1)
        self.bn = build_norm_layer(norm_cfg, channels)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(F.silu(x))))


class ConvBN(nn.Module):
    """1×1 conv → BN (the first layer's channel adapters)."""

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = build_norm_layer(norm_cfg, out_channels)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class FusionNode(nn.Module):
    """Fuses the kept inputs (one scalar weight per weighted candidate), then :class:`SeparableConvBN`."""

    def __init__(self, weighted: Sequence[str], channels: int, norm_cfg: dict):
        super().__init__()
        self.weights = nn.ParameterDict({c: nn.Parameter(torch.ones(())) for c in weighted})
        self.conv = SeparableConvBN(channels, norm_cfg)

    def forward(self, inputs: Mapping[str, torch.Tensor], option: str) -> torch.Tensor:
        kept, fusion = parse_option(option)
        if fusion is None or fusion == "sum":
            x = inputs[kept[0]]
            for name in kept[1:]:
                x = x + inputs[name]
        else:
            w = torch.stack([self.weights[name] for name in kept])
            w = w.softmax(0) if fusion == "softmax" else F.relu(w) / (F.relu(w).sum() + EPS)
            x = w[0] * inputs[kept[0]]
            for i, name in enumerate(kept[1:], 1):
                x = x + w[i] * inputs[name]
        return self.conv(x)


def bifpn_d0_arch(num_layers: int = 3, num_levels: int = 5, prefix: str = "neck.") -> dict[str, str | int]:
    """EfficientDet's BiFPN (D0: 3 layers): every input kept, fast normalized fusion."""
    arch: dict[str, str | int] = {f"{prefix}depth": num_layers}
    for i in range(num_layers):
        for name, (candidates, _) in _nodes(num_levels, i == 0).items():
            arch[f"{prefix}layer{i}.{name}"] = "+".join(candidates) + ":fast"
    return arch


def _td_name(level: int) -> str:
    """The top-down node of ``level`` (0 = P3, whose top-down node is the P3 output)."""
    return f"P{level + 3}_{'td' if level else 'out'}"


def _nodes(num_levels: int, first: bool) -> dict[str, tuple[tuple[str, ...], str | None]]:
    """Node name -> (candidate inputs, the input every option keeps), in evaluation order; level 0 is P3.
    ``first``: the first layer, whose ``same`` inputs are the backbone's (never a dead branch to drop)."""
    carry = None if first else "same"
    nodes = {}
    for level in reversed(range(num_levels - 1)):
        nodes[_td_name(level)] = (("same", "up"), carry)
    for level in range(1, num_levels):
        top = level == num_levels - 1
        nodes[f"P{level + 3}_out"] = (("same", "down"), carry) if top else (("same", "td", "down"), "td")
    return nodes


@MODELS.register_module()
class SearchableBiFPN(BaseModule):
    """BiFPN neck whose node inputs, fusion rules and depth are searched (``arch=None``) or fixed (``arch``).

    ``in_channels``: channels of the backbone outputs (C3–C5 after ``start_level``); ``num_outs`` levels
    (5: P3–P7); ``num_layers``: the deepest layer count; ``depths``: the depth options (default
    ``1..num_layers``); ``fusions``: the fusion rules offered (restrict to ``("fast",)`` to search the
    topology only).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 64, num_outs: int = 5, num_layers: int = 3,
                 depths: Sequence[int] | None = None, fusions: Sequence[str] = FUSIONS, start_level: int = 0,
                 norm_cfg: dict | None = None, key_prefix: str = "neck.",
                 arch: Mapping[str, str | int] | str | os.PathLike | None = None, init_cfg: dict | list | None = None):
        super().__init__(init_cfg=init_cfg)
        norm_cfg = dict(norm_cfg or dict(type="BN", momentum=0.01, eps=1e-3))
        depths = tuple(depths or range(1, num_layers + 1))
        self._init_args = dict(in_channels=list(in_channels), out_channels=out_channels, num_outs=num_outs,
                               num_layers=num_layers, depths=depths, fusions=tuple(fusions),
                               start_level=start_level, norm_cfg=norm_cfg, key_prefix=key_prefix, init_cfg=init_cfg)
        channels = list(in_channels)[start_level:]
        extra = num_outs - len(channels)
        if not channels or num_outs < 2 or extra < 0 or extra == 1:
            raise ValueError(f"SearchableBiFPN needs num_outs ({num_outs}) >= 2 and either no extra levels or at least "
                             f"two on top of the {len(channels)} backbone levels (EfficientDet: C3-C5 + P6, P7)")
        if not fusions or any(f not in FUSIONS for f in fusions):
            raise ValueError(f"fusions must be a non-empty subset of {list(FUSIONS)}, got {list(fusions)}")
        if not depths or any(not isinstance(d, int) or not 1 <= d <= num_layers for d in depths):
            raise ValueError(f"depths must be integers in 1..num_layers ({num_layers}), got {list(depths)}")
        self.start_level, self.num_backbone, self.num_levels = start_level, len(channels), num_outs
        self.key_prefix = key_prefix
        choices = {"depth": Choice(f"{key_prefix}depth", depths)}
        for i in range(max(depths)):
            gate = None if i == 0 else (f"{key_prefix}depth", tuple(d for d in depths if d > i))
            for name, (candidates, required) in _nodes(num_outs, i == 0).items():
                choices[f"layer{i}_{name}"] = Choice(f"{key_prefix}layer{i}.{name}",
                                                     node_options(candidates, required, fusions), gate=gate)
        self.choices = nn.ModuleDict(choices)
        chosen = None
        if arch is not None:
            chosen = (make_arch(space_of(self), arch) if isinstance(arch, Mapping)
                      else load_arch(arch, space_of(self))).as_dict()
            for name, choice in list(self.choices.items()):
                if name.startswith("layer") and int(name[5:name.index("_")]) >= chosen[f"{key_prefix}depth"]:
                    del self.choices[name]
                    continue
                fixed = Choice(choice.key, (chosen[choice.key],), gate=choice.gate)
                fixed.activate(chosen[choice.key])
                self.choices[name] = fixed
        self.arch = chosen
        # First layer: channel adapters for the top-down path (down_channels) and the bottom-up path
        # (level_connections), the extra levels' 1x1 conv; a fixed subnet builds only those it uses.
        usage = self._first_layer_usage(chosen)
        self.down_channels = nn.ModuleDict({f"P{lv + 3}": ConvBN(channels[lv], out_channels, norm_cfg)
                                            for lv in range(len(channels)) if usage["down", lv]})
        self.level_connections = nn.ModuleDict({f"P{lv + 3}": ConvBN(channels[lv], out_channels, norm_cfg)
                                                for lv in range(1, len(channels)) if usage["level", lv]})
        self.extra_conv = ConvBN(channels[-1], out_channels, norm_cfg) if extra else None
        num_built = max(depths) if chosen is None else chosen[f"{key_prefix}depth"]
        self.layers = nn.ModuleList()
        for i in range(num_built):
            layer = nn.ModuleDict()
            for name, (candidates, _) in _nodes(num_outs, i == 0).items():
                if chosen is None:
                    weighted = candidates
                else:
                    kept, fusion = parse_option(chosen[f"{key_prefix}layer{i}.{name}"])
                    weighted = kept if fusion in ("fast", "softmax") else ()
                layer[name] = FusionNode(weighted, out_channels, norm_cfg)
            self.layers.append(layer)

    def _first_layer_usage(self, chosen: Mapping | None) -> dict[tuple[str, int], bool]:
        """Which first-layer adapters an arch uses (all of them in the supernet)."""
        def keeps(node: str, name: str) -> bool:
            return chosen is None or name in parse_option(chosen[f"{self.key_prefix}layer0.{node}"])[0]

        usage = {}
        top = self.num_levels - 1
        for lv in range(self.num_backbone):
            usage["down", lv] = keeps(_td_name(lv), "same") if lv < top else keeps(_td_name(top - 1), "up")
            usage["level", lv] = lv > 0 and keeps(f"P{lv + 3}_out", "same")
        return usage

    def fix_arch(self, chosen: Mapping[str, str | int]) -> SearchableBiFPN:
        """The fixed subnet of ``chosen`` (this neck's keys are read from it) holding copies of the weights it uses."""
        own = {key: chosen[key] for key in space_of(self)}
        device = next(self.parameters()).device
        with torch.device("meta"):
            fixed = SearchableBiFPN(**self._init_args, arch=own)
        state = self.state_dict()
        fixed.load_state_dict({k: state[k].detach().clone() for k in fixed.state_dict()}, assign=True)
        if device.type != "meta" and any(t.is_meta for t in fixed.state_dict().values()):
            raise RuntimeError("SearchableBiFPN.fix_arch left tensors without data")
        return fixed.train(self.training)

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        feats = list(inputs[self.start_level:self.start_level + self.num_backbone])
        sizes = [f.shape[-2:] for f in feats]
        extra: list[torch.Tensor] = []
        if self.extra_conv is not None:
            extra.append(maxpool_same(self.extra_conv(feats[-1])))
            while len(sizes) + len(extra) < self.num_levels:
                extra.append(maxpool_same(extra[-1]))
        sizes += [e.shape[-2:] for e in extra]
        depth = self.choices["depth"].active
        x: list[torch.Tensor] | None = None
        for i in range(depth):
            if i == 0:
                def same(lv: int, path: str) -> torch.Tensor:
                    if lv >= self.num_backbone:
                        return extra[lv - self.num_backbone]
                    adapters = self.level_connections if path == "bu" and lv > 0 else self.down_channels
                    return adapters[f"P{lv + 3}"](feats[lv])
            else:
                def same(lv: int, path: str, x=x) -> torch.Tensor:
                    return x[lv]
            x = self._layer(i, same, sizes)
        return tuple(x)

    def _layer(self, i: int, same, sizes) -> list[torch.Tensor]:
        layer, top = self.layers[i], self.num_levels - 1
        td: dict[int, torch.Tensor] = {}
        for lv in reversed(range(top)):
            name = _td_name(lv)
            kept, _ = parse_option(self.choices[f"layer{i}_{name}"].active)
            inputs = {}
            if "same" in kept:
                inputs["same"] = same(lv, "td")
            if "up" in kept:
                inputs["up"] = F.interpolate(td[lv + 1] if lv + 1 < top else same(top, "td"), size=sizes[lv],
                                             mode="nearest")
            td[lv] = layer[name](inputs, self.choices[f"layer{i}_{name}"].active)
        out = [td[0]]
        for lv in range(1, top + 1):
            name = f"P{lv + 3}_out"
            kept, _ = parse_option(self.choices[f"layer{i}_{name}"].active)
            inputs = {}
            if "same" in kept:
                inputs["same"] = same(lv, "bu")
            if "td" in kept:
                inputs["td"] = td[lv]
            if "down" in kept:
                inputs["down"] = maxpool_same(out[lv - 1])
            out.append(layer[name](inputs, self.choices[f"layer{i}_{name}"].active))
        return out


def describe_bifpn(arch, prefix: str = "neck.") -> str:
    """One line per arch: depth, the inputs dropped from the full BiFPN, and how many nodes use each fusion."""
    chosen = dict(arch)
    depth = chosen[f"{prefix}depth"]
    per_layer = sum(1 for k in chosen if k.startswith(f"{prefix}layer0."))
    dropped, fusions = [], {}
    for i in range(depth):
        for name, (candidates, _) in _nodes(per_layer // 2 + 1, i == 0).items():
            kept, fusion = parse_option(chosen[f"{prefix}layer{i}.{name}"])
            dropped += [f"{i}.{name}.{c}" for c in candidates if c not in kept]
            if fusion:
                fusions[fusion] = fusions.get(fusion, 0) + 1
    fused = " ".join(f"{f} {n}" for f, n in sorted(fusions.items())) or "none"
    return f"depth {depth}; dropped inputs: {', '.join(dropped) or 'none'}; fusion: {fused}"
