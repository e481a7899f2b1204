"""Binary conv vs a float conv of the same shape: what binarization costs in the training simulation.

A is ``BinaryConv2d`` in one mode, B an ``nn.Conv2d`` of the same shape (in/out channels, kernel, stride,
padding, groups, no bias) on the same input. Two measurements per mode: an eval-mode forward without
grad, and a train step (forward, sum, backward). Modes: ``weights`` (sign of W times the per-channel
mean |W|) and ``weights_activations`` (also the sign of the input). The binary conv is simulated in
float32, as in training (``torch.nn.functional.conv2d`` on ±1 values): the ratio is the overhead of the
sign/scale ops and their surrogate gradients, not the speed of a bit-packed XNOR kernel (none here).
"""
from __future__ import annotations

import argparse

import torch
from _timing import add_process_arguments, interleave, measure_in_processes
from torch import nn

from tasknas.plugins.binary.ops import BinaryConv2d

MODES = ("weights", "weights_activations")


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    shape = dict(in_channels=args.channels, out_channels=args.channels, kernel_size=args.kernel,
                 padding=args.kernel // 2, groups=args.groups, bias=False)
    plain = nn.Conv2d(**shape)
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    xg = x.clone().requires_grad_()
    result = {}
    for mode in MODES:
        binary = BinaryConv2d(**shape, mode=mode)
        binary.load_state_dict(plain.state_dict())

        def forward(conv: nn.Module):
            def run() -> None:
                with torch.no_grad():
                    conv(x)
            return run

        def train(conv: nn.Module):
            def run() -> None:
                conv(xg).sum().backward()
                conv.weight.grad = xg.grad = None
            return run

        fwd = interleave(forward(binary), forward(plain), args.rounds)
        step = interleave(train(binary), train(plain), args.rounds)
        result[f"{mode}_forward"] = fwd.ratio()
        result[f"{mode}_train"] = step.ratio()
        result["float_forward_ms"] = fwd.median_b() * 1e3
        result["float_train_ms"] = step.median_b() * 1e3
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed calls of A and of B per ratio (default 30)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--channels", type=int, default=64, help="input and output channels (default 64)")
    parser.add_argument("--size", type=int, default=16, help="input height and width (default 16)")
    parser.add_argument("--kernel", type=int, default=3, help="kernel size (default 3)")
    parser.add_argument("--groups", type=int, default=1, help="conv groups, e.g. 4 for a BATS op (default 1)")
    add_process_arguments(parser)
    args = parser.parse_args()
    r = measure_in_processes(args, measure)
    for mode in MODES:
        print(f"{mode:20s} binary / float conv: forward {r[f'{mode}_forward']:.2f}x, "
              f"train step {r[f'{mode}_train']:.2f}x")
    print(f"  context: float conv forward {r['float_forward_ms']:.2f} ms, train step {r['float_train_ms']:.2f} ms "
          f"(batch {args.batch}, {args.channels}->{args.channels} ch, {args.kernel}x{args.kernel}, groups "
          f"{args.groups}, {args.size}x{args.size}, 1 thread)")


if __name__ == "__main__":
    main()
