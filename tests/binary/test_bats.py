"""The BATS op set, temperature schedule and stage plan."""
import pytest
import torch
from torch import nn

from tasknas.plugins.binary.bats import (
    BATS_OPS,
    BatsConvOp,
    Stage,
    TemperatureSchedule,
    bats_op_set,
    stage_at,
)
from tasknas.plugins.binary.darts import Zero
from tasknas.plugins.binary.ops import BinaryConv2d, channel_shuffle


def test_bats_op_set_mirrors_the_darts_space_with_grouped_convs():
    op_set = bats_op_set(groups=4)
    assert op_set.names == BATS_OPS and len(BATS_OPS) == 8
    for name in ("group_conv_3x3", "group_conv_5x5", "dil_group_conv_3x3", "dil_group_conv_5x5"):
        op = op_set.ops[name](16, 1, True)
        (conv,) = [m for m in op.modules() if isinstance(m, BinaryConv2d)]
        assert conv.groups == 4 and conv.in_channels == conv.out_channels == 16  # grouped, not depthwise (16)
        assert conv.mode == "weights_activations"
    assert isinstance(op_set.ops["none"](16, 2, True), Zero)
    assert isinstance(op_set.ops["skip_connect"](16, 1, True), nn.Identity)


def test_conv_unit_is_bn_then_binary_conv_then_prelu():
    op = bats_op_set(groups=2).ops["dil_group_conv_3x3"](4, 1, True)
    assert [type(m) for m in op.unit] == [nn.BatchNorm2d, BinaryConv2d, nn.PReLU]
    assert op.unit[1].dilation == (2, 2) and op.unit[1].padding == (2, 2)


def test_conv_op_is_shuffled_unit_plus_skip():
    torch.manual_seed(0)
    op = BatsConvOp(8, 3, 1, 1, 2, True, {"mode": "weights_activations"})
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(op(x), channel_shuffle(op.unit(x), 2) + x)
    reducing = BatsConvOp(8, 5, 2, 1, 2, True, {"mode": "weights_activations"})
    y = torch.randn(2, 8, 7, 7)  # odd size: both branches round up to 4x4
    expected = channel_shuffle(reducing.unit(y), 2) + nn.functional.avg_pool2d(y, 2, 2, ceil_mode=True,
                                                                               count_include_pad=False)
    assert torch.equal(reducing(y), expected) and expected.shape == (2, 8, 4, 4)


def test_preprocess_is_binary_or_real_as_configured():
    binary = bats_op_set(groups=2).preprocess(6, 4, True)
    real = bats_op_set(groups=2, binary_preprocess=False).preprocess(6, 4, True)
    assert isinstance(binary[1], BinaryConv2d) and binary[1].groups == 1
    assert type(real[1]) is nn.Conv2d
    halving = bats_op_set(groups=2).reduce_preprocess(6, 4, True)
    assert halving(torch.randn(1, 6, 7, 7)).shape == (1, 4, 4, 4)


def test_groups_must_divide_the_channels():
    with pytest.raises(ValueError, match="groups=3 must divide the 8 channels"):
        bats_op_set(groups=3).ops["group_conv_3x3"](8, 1, True)
    with pytest.raises(ValueError, match="mode 'xnor' is not one of"):
        bats_op_set(mode="xnor")


@pytest.mark.parametrize("schedule, epochs, expected", [
    (TemperatureSchedule(1.0, 0.2, "linear"), 5, [1.0, 0.8, 0.6, 0.4, 0.2]),
    (TemperatureSchedule(1.0, 0.25, "exponential"), 3, [1.0, 0.5, 0.25]),
    (TemperatureSchedule(1.0, 0.2, "cosine"), 3, [1.0, 0.6, 0.2]),
    (TemperatureSchedule(2.0, 0.2, "constant"), 3, [2.0, 2.0, 2.0]),
    (TemperatureSchedule(3.0, 0.2, "linear"), 1, [3.0]),
])
def test_temperature_schedule_values(schedule, epochs, expected):
    assert [round(schedule.at(e, epochs), 12) for e in range(epochs)] == expected


def test_temperature_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="kind 'step' is not one of"):
        TemperatureSchedule(kind="step")
    with pytest.raises(ValueError, match="end must be a finite number > 0, got 0"):
        TemperatureSchedule(end=0)
    with pytest.raises(ValueError, match="epoch 3 is outside 0..2"):
        TemperatureSchedule().at(3, 3)


def test_stages_cover_the_epochs_in_order():
    stages = (Stage("activations", 2), Stage("weights_activations", 3))
    assert [stage_at(stages, e)[1].mode for e in range(5)] == ["activations"] * 2 + ["weights_activations"] * 3
    with pytest.raises(ValueError, match="epoch 5 is past the 5 epochs"):
        stage_at(stages, 5)
    with pytest.raises(ValueError, match="stage mode 'binary'"):
        Stage("binary", 1)
