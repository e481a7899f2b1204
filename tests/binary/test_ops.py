"""Binary operations: forward values and gradients against hand-computed ones."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tasknas.plugins.binary.ops import (
    BinaryConv2d,
    binary_modes,
    channel_shuffle,
    set_binary_mode,
    sign_bireal,
    sign_ste,
)

POINTS = [-1.5, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0]


def _conv_1x1(weight: list[float], **kwargs) -> BinaryConv2d:
    conv = BinaryConv2d(len(weight), 1, 1, **kwargs)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(weight).view(1, -1, 1, 1))
    if conv.scale is not None:  # a learned scale starts at mean |W| of the weights it was built with
        with torch.no_grad():
            conv.scale.copy_(conv.weight.abs().mean(dim=(1, 2, 3)))
    return conv


def _input(values: list[float]) -> torch.Tensor:
    return torch.tensor(values).view(1, -1, 1, 1).requires_grad_()


@pytest.mark.parametrize("sign", [sign_ste, sign_bireal])
def test_sign_maps_zero_to_plus_one_and_everything_to_plus_or_minus_one(sign):
    assert sign(torch.tensor(POINTS)).tolist() == [-1, -1, 1, 1, 1, 1, 1]


def test_ste_gradient_is_the_clipped_identity():
    x = torch.tensor(POINTS, requires_grad=True)
    sign_ste(x).backward(torch.full_like(x, 3.0))
    assert x.grad.tolist() == [0, 3, 3, 3, 3, 3, 0]  # |x| <= 1 passes, |x| > 1 is cut


def test_bireal_gradient_is_two_minus_two_abs_x_inside_minus_one_one():
    x = torch.tensor(POINTS, requires_grad=True)
    sign_bireal(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 2.0, 1.5, 1.0, 0.0, 0.0]


def test_weights_only_conv_uses_mean_abs_scale_and_its_gradient():
    # W = [0.5, -0.25]: alpha = 0.375, binary W = [0.375, -0.375]; x = [2, 3] stays real.
    conv, x = _conv_1x1([0.5, -0.25], mode="weights"), _input([2.0, 3.0])
    y = conv(x)
    assert y.item() == -0.375
    y.backward()
    # dy/dW_i = sign(W_i)/n * sum_j sign(W_j) x_j + alpha * x_i  (STE: |W_i| <= 1)
    assert conv.weight.grad.flatten().tolist() == [0.5 * -1 + 0.375 * 2, -0.5 * -1 + 0.375 * 3]
    assert x.grad.flatten().tolist() == [0.375, -0.375]


def test_fully_binary_conv_binarizes_inputs_too():
    conv, x = _conv_1x1([0.5, -0.25], mode="weights_activations"), _input([0.5, -0.8])
    y = conv(x)
    assert y.item() == 0.375 * 1 + (-0.375) * (-1)
    y.backward()
    # sum_j sign(W_j) sign(x_j) = 2
    assert conv.weight.grad.flatten().tolist() == [0.5 * 2 + 0.375 * 1, -0.5 * 2 + 0.375 * -1]
    assert x.grad.flatten().tolist() == [0.375, -0.375]


def test_bireal_activation_estimator_scales_the_input_gradient():
    conv = _conv_1x1([0.5, -0.25], mode="weights_activations", activation_estimator="bireal")
    x = _input([0.5, -0.8])
    conv(x).backward()
    assert torch.allclose(x.grad.flatten(), torch.tensor([0.375 * (2 - 1.0), -0.375 * (2 - 1.6)]), atol=1e-7)


def test_activations_only_mode_keeps_real_weights():
    conv, x = _conv_1x1([0.5, -0.25], mode="activations"), _input([0.5, -0.8])
    y = conv(x)
    assert y.item() == 0.5 * 1 + (-0.25) * (-1)
    y.backward()
    assert conv.weight.grad.flatten().tolist() == [1.0, -1.0]
    assert x.grad.flatten().tolist() == [0.5, -0.25]


def test_learned_scale_starts_at_mean_abs_w_and_gets_its_own_gradient():
    conv, x = _conv_1x1([0.5, -0.25], mode="weights", scale="learned"), _input([2.0, 3.0])
    assert conv.scale.shape == (1,) and conv.scale.item() == 0.375
    conv(x).backward()
    assert conv.scale.grad.tolist() == [2.0 - 3.0]
    assert conv.weight.grad.flatten().tolist() == [0.375 * 2, 0.375 * 3]  # the scale no longer depends on W


def test_no_scale_uses_plain_signs():
    conv = _conv_1x1([0.5, -0.25], mode="weights", scale="none")
    assert conv(_input([2.0, 3.0])).item() == -1.0


def test_weight_gradient_is_cut_where_abs_w_exceeds_one():
    conv = _conv_1x1([1.5, -0.25], mode="weights", scale="none")
    conv(_input([2.0, 3.0])).backward()
    assert conv.weight.grad.flatten().tolist() == [0.0, 3.0]


def test_grouped_binary_conv_scales_each_output_over_its_own_group():
    conv = BinaryConv2d(4, 2, 1, groups=2, mode="weights")
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[0.2, -0.6], [-0.3, -0.1]]).view(2, 2, 1, 1))
    x = torch.tensor([0.5, -0.25, 0.75, -1.5]).view(1, 4, 1, 1)
    # alpha = [0.4, 0.2]: y0 = 0.4 * 0.5 - 0.4 * -0.25, y1 = -0.2 * 0.75 - 0.2 * -1.5
    assert torch.allclose(conv(x).flatten(), torch.tensor([0.3, 0.15]), atol=1e-7)
    conv.mode = "weights_activations"
    assert torch.allclose(conv(x).flatten(), torch.tensor([0.8, 0.0]), atol=1e-7)


def test_binary_conv_equals_float_conv_of_the_binarized_tensors():
    torch.manual_seed(0)
    conv = BinaryConv2d(8, 6, 3, stride=2, padding=2, dilation=2, groups=2, mode="weights_activations")
    x = torch.randn(2, 8, 9, 9)
    w = torch.where(conv.weight >= 0, 1.0, -1.0) * conv.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
    expected = F.conv2d(torch.where(x >= 0, 1.0, -1.0), w, None, 2, 2, 2, 2)
    assert torch.equal(conv(x), expected)


def test_real_mode_is_a_plain_convolution():
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 4, 3, padding=1, groups=2, mode="real")
    plain = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False)
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(conv(x), plain(x))


def test_prelu_forward_and_gradients():
    prelu = nn.PReLU(2)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.25, 0.1]))
    x = torch.tensor([[[[-2.0, 3.0]], [[-4.0, 1.0]]]], requires_grad=True)
    y = prelu(x)
    assert torch.equal(y.flatten(), torch.tensor([-0.5, 3.0, -0.4, 1.0]))  # a * x below 0, x above
    y.sum().backward()
    assert torch.equal(x.grad.flatten(), torch.tensor([0.25, 1.0, 0.1, 1.0]))
    assert prelu.weight.grad.tolist() == [-2.0, -4.0]  # the sum of the negative inputs per channel


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    with pytest.raises(ValueError, match="6 channels do not split into 4 groups"):
        channel_shuffle(x, 4)


def test_set_binary_mode_reaches_every_binary_conv_and_rejects_unknown_modes():
    net = nn.Sequential(BinaryConv2d(2, 2, 1, mode="real"), nn.ReLU(), nn.Sequential(BinaryConv2d(2, 2, 1)))
    assert set_binary_mode(net, "activations") == 2 and binary_modes(net) == {"activations"}
    with pytest.raises(ValueError, match=r"binary mode 'binary' is not one of \['real', 'weights', 'activations'"):
        set_binary_mode(net, "binary")


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "xnor"}, "binary mode 'xnor'"),
    ({"scale": "max"}, "weight scale 'max'"),
    ({"weight_estimator": "tanh"}, "weight estimator 'tanh'"),
    ({"groups": 3}, "groups=3 must divide in_channels=4"),
])
def test_binary_conv_rejects_bad_settings_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BinaryConv2d(4, 4, 1, **kwargs)
