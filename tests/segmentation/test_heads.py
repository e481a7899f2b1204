"""The searchable decode heads: mmseg's ASPPHead as one arch, fixed = supernet, single-path training, bad input."""
import random

import pytest
import torch
from mmseg.models.decode_heads import ASPPHead

from tasknas.core import fix, make_arch, sample, set_arch, space_of
from tasknas.plugins.segmentation import SearchableASPPHead, SearchableCellHead
from tasknas.plugins.segmentation.aspp import aspp_state_dict_from_mmseg, mmseg_aspp_arch

BN = dict(type="BN", requires_grad=True)
MMSEG_DILATIONS = (1, 12, 24, 36)


def _aspp(**kw) -> SearchableASPPHead:
    args = dict(in_channels=24, channels=16, num_classes=3, norm_cfg=BN, in_index=3, low_level_index=(0,),
                low_level_channels=(8,), low_level_widths=(8,), dropout_ratio=0.0)
    return SearchableASPPHead(**{**args, **kw})


def _cells(**kw) -> SearchableCellHead:
    args = dict(in_channels=[8, 12, 16, 24], in_index=[0, 1, 2, 3], channels=8, num_classes=3, norm_cfg=BN,
                num_cells=3, dropout_ratio=0.0)
    return SearchableCellHead(**{**args, **kw})


def _inputs(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, s, s, generator=g) for c, s in ((8, 32), (12, 16), (16, 8), (24, 8))]


def _randomise_bn(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_mmsegs_aspp_head_is_one_arch_and_gives_its_outputs(mode):
    torch.manual_seed(0)
    stock = ASPPHead(dilations=MMSEG_DILATIONS, in_channels=24, channels=16, num_classes=3, norm_cfg=BN,
                     in_index=3, dropout_ratio=0.0)
    _randomise_bn(stock, 1)
    arch = mmseg_aspp_arch(MMSEG_DILATIONS, channels=16)
    fixed = _aspp(dilations=(1, 6, 12, 24, 36), arch=arch)
    fixed.load_state_dict(aspp_state_dict_from_mmseg(stock.state_dict(), MMSEG_DILATIONS, 16))
    supernet = _aspp(dilations=(1, 6, 12, 24, 36))
    own = fix(supernet, arch).state_dict()  # the supernet's weights on that arch take the same values
    state = dict(supernet.state_dict())
    for k, v in fixed.state_dict().items():
        state[k] = v.clone()
    supernet.load_state_dict(state)
    set_arch(supernet, make_arch(space_of(supernet), arch))
    assert set(own) == set(fixed.state_dict())
    x = _inputs()
    for m in (stock, fixed, supernet):
        m.train(mode == "train")
    with torch.no_grad():
        expected = stock(x)
        assert (fixed(x) - expected).abs().max().item() <= 1e-6
        assert (supernet(x) - expected).abs().max().item() <= 1e-6


@pytest.mark.parametrize("build", [_aspp, _cells])
def test_fixed_head_is_bit_identical_to_the_supernet_on_its_arch(build):
    torch.manual_seed(0)
    head = build()
    _randomise_bn(head, 2)
    head.eval()
    x = _inputs(3)
    rng = random.Random(0)
    for _ in range(6):
        arch = sample(space_of(head), rng)
        set_arch(head, arch)
        fixed = fix(head, arch).eval()
        rebuilt = build(arch=arch.as_dict())  # the head an exported config builds, loaded with the fixed weights
        rebuilt.load_state_dict(fixed.state_dict())
        rebuilt.eval()
        assert not [c for c in space_of(fixed).values() if len(c) > 1]
        with torch.no_grad():
            out = head(x)
            assert torch.equal(fixed(x), out)
            assert torch.equal(rebuilt(x), out)
        assert sum(p.numel() for p in fixed.parameters()) < sum(p.numel() for p in head.parameters())


@pytest.mark.parametrize("build", [_aspp, _cells])
def test_a_training_step_leaves_every_weight_off_the_path_untouched(build):
    torch.manual_seed(0)
    head = build()
    head.train()
    space = space_of(head)
    base = sample(space, random.Random(1)).as_dict()
    for low in space.get("head.low_level", (None,)):  # DeepLabV3 and each decoder: their classifiers differ
        arch = make_arch(space, base if low is None else {**base, "head.low_level": low})
        set_arch(head, arch)
        decoder = low not in (None, "none")
        used = set(fix(head, arch).state_dict())  # the tensors the arch uses, under their fixed names
        before = {k: v.clone() for k, v in head.state_dict().items()}
        optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
        optimizer.zero_grad(set_to_none=True)
        head(_inputs(4)).square().mean().backward()
        optimizer.step()
        after = head.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        off_path = {k for k in before if _fixed_name(k, decoder) not in used}
        assert off_path and changed and not (changed & off_path), sorted(changed & off_path)[:5]


def _fixed_name(name: str, decoder: bool) -> str | None:
    """The state_dict name a supernet tensor has in the fixed head, None when the fixed head has no such tensor:
    module choices lose `.candidates.<op>`; the decoder classifier becomes `conv_seg` when a decoder is chosen."""
    if name.startswith("conv_seg.") and decoder:
        return None
    if name.startswith("decoder_seg."):
        return "conv_seg." + name[len("decoder_seg."):] if decoder else None
    parts = name.split(".")
    if "candidates" in parts:
        i = parts.index("candidates")
        return ".".join(parts[:i] + parts[i + 2:])
    return name


def test_mmsegs_rates_are_options_and_mmsegs_bottleneck_weights_split_exactly():
    head = _aspp(dilations=(1, 12, 24, 36))
    space = space_of(head)
    assert {"d1:16", "d12:16", "d24:16", "d36:16", "sep_d12:8"} <= set(space["head.aspp0"])
    assert "sep_d1:16" not in space["head.aspp0"]  # no separable form of the 1x1 branch
    assert space["head.image_pool"] == ("off", "on:8", "on:16")
    assert space["head.low_level"] == ("none", "in0:8")
    stock = ASPPHead(dilations=MMSEG_DILATIONS, in_channels=24, channels=16, num_classes=3, norm_cfg=BN, in_index=3)
    state = aspp_state_dict_from_mmseg(stock.state_dict(), MMSEG_DILATIONS, 16)
    parts = [state["image_pools.16.project.weight"]] + [state[f"projects.{i}.16.weight"] for i in range(4)]
    assert torch.equal(torch.cat(parts, 1), stock.state_dict()["bottleneck.conv.weight"])


def test_bad_head_settings_and_archs_get_one_clear_error():
    with pytest.raises(ValueError, match=r"kinds must be a non-empty subset of \['conv', 'sep'\], got \['conv', 'def"):
        _aspp(kinds=("conv", "deform"))
    with pytest.raises(ValueError, match=r"dilations must be distinct ints >= 1, got \[1, 0\]"):
        _aspp(dilations=(1, 0))
    with pytest.raises(ValueError, match="ops must be distinct names from"):
        _cells(ops=("conv3x3", "conv7x7"))
    with pytest.raises(ValueError, match=r"cell_index 4 must index in_index"):
        _cells(cell_index=4)
    arch = mmseg_aspp_arch(MMSEG_DILATIONS, channels=16)
    with pytest.raises(ValueError, match=r"head.aspp1.*'d7:16'"):
        _aspp(arch={**arch, "head.aspp1": "d7:16"})
    cells_arch = sample(space_of(_cells()), random.Random(0)).as_dict()
    with pytest.raises(ValueError, match=r"head.cell0.input1"):
        _aspp(arch=cells_arch)  # an arch of another space
