"""Binary operations: sign with surrogate gradients, per-channel scaling, binary (grouped) convolution.

* Sign with the straight-through estimator (STE, clipped identity: the gradient passes where |x| <= 1),
  as in Courbariaux et al., "Binarized Neural Networks" (2016), and with the piecewise-polynomial
  approximation of Liu et al., "Bi-Real Net" (ECCV 2018), whose derivative is ``2 - 2|x|`` on |x| < 1.
  Both map 0 to +1, so every binary value is exactly ±1.
* Per-output-channel scaling of the binary weights: the analytic ``mean |W|`` of Rastegari et al.,
  "XNOR-Net" (ECCV 2016), or a learned factor (initialised to that mean), as in Bulat and
  Tzimiropoulos, "XNOR-Net++" (BMVC 2019).
* :class:`BinaryConv2d`: a convolution whose ``mode`` says what is binarized — ``"weights"`` (weights
  only, as the public BNAS code), ``"weights_activations"`` (a fully binary conv), ``"activations"``
  (real weights on binary inputs: the first stage of the BATS search) or ``"real"`` (a plain convolution,
  for the full-precision twin of a binary network). ``groups`` gives the binary grouped convolution.

The binary conv is simulated in floating point (±1 values, scaled), as for training; there is no
bit-packed XNOR/popcount kernel here.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("real", "weights", "activations", "weights_activations")
SCALES = ("mean", "learned", "none")


def _sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0, -1 elsewhere (``torch.sign`` would give 0 at 0)."""
    return (x >= 0).to(x.dtype).mul_(2).sub_(1)


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return _sign(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _SignBiReal(_SignSTE):
    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (2 - 2 * x.abs()).clamp(min=0)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Sign (0 -> +1); backward: the clipped identity ``grad * [|x| <= 1]``."""
    return _SignSTE.apply(x)


def sign_bireal(x: torch.Tensor) -> torch.Tensor:
    """Sign (0 -> +1); backward: the Bi-Real approximation's derivative ``grad * max(0, 2 - 2|x|)``."""
    return _SignBiReal.apply(x)


ESTIMATORS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"ste": sign_ste, "bireal": sign_bireal}


def _check(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {list(allowed)}")
    return value


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet): ``[a0 a1 b0 b1] -> [a0 b0 a1 b1]``."""
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError(f"channel_shuffle: {c} channels do not split into {groups} groups")
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class BinaryConv2d(nn.Conv2d):
    """A convolution with binarized weights and/or inputs (see the module docstring for ``mode``).

    Binary weights are ``scale[o] * sign(W[o])`` per output channel ``o``; ``scale="mean"`` computes
    ``mean |W[o]|`` on every call (differentiable, as XNOR-Net), ``"learned"`` holds a parameter of
    shape ``(out_channels,)`` initialised to that mean, ``"none"`` uses 1. Inputs are binarized with
    ``sign``. ``weight_estimator`` / ``activation_estimator`` pick the surrogate gradient of each sign:
    ``"ste"`` or ``"bireal"``. The mode can be changed at any time (:func:`set_binary_mode`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = False, mode: str = "weights_activations",
                 scale: str = "mean", weight_estimator: str = "ste", activation_estimator: str = "ste"):
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"BinaryConv2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.mode = _check("binary mode", mode, MODES)
        self.scale_kind = _check("weight scale", scale, SCALES)
        self.weight_estimator = _check("weight estimator", weight_estimator, tuple(ESTIMATORS))
        self.activation_estimator = _check("activation estimator", activation_estimator, tuple(ESTIMATORS))
        if scale == "learned":
            with torch.no_grad():
                init = self.weight.abs().mean(dim=(1, 2, 3))
            self.scale = nn.Parameter(init.clone())
        else:
            self.register_parameter("scale", None)

    def binary_weight(self) -> torch.Tensor:
        """The weights the convolution uses in a mode that binarizes weights."""
        signs = ESTIMATORS[self.weight_estimator](self.weight)
        if self.scale_kind == "none":
            return signs
        factor = self.scale if self.scale is not None else self.weight.abs().mean(dim=(1, 2, 3))
        return signs * factor.view(-1, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode in ("activations", "weights_activations"):
            x = ESTIMATORS[self.activation_estimator](x)
        weight = self.binary_weight() if self.mode in ("weights", "weights_activations") else self.weight
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, mode={self.mode!r}, scale={self.scale_kind!r}, "
                f"estimators=({self.weight_estimator!r}, {self.activation_estimator!r})")


def set_binary_mode(model: nn.Module, mode: str) -> int:
    """Set ``mode`` on every :class:`BinaryConv2d` of ``model``; returns how many there are."""
    _check("binary mode", mode, MODES)
    count = 0
    for module in model.modules():
        if isinstance(module, BinaryConv2d):
            module.mode = mode
            count += 1
    return count


def binary_modes(model: nn.Module) -> set[str]:
    """The modes in use by the binary convs of ``model``."""
    return {m.mode for m in model.modules() if isinstance(m, BinaryConv2d)}
