"""Neck supernet train step vs the same arch as a fixed neck (goal: ratio <= 1.02), NAS-FPN and BiFPN.

A is one step on the searchable neck (``SearchableNASFPN``: 7 cells stacked twice; ``SearchableBiFPN``: up
to 3 layers) with ``set_arch`` before it: forward over a C3-C5 pyramid (32/64/128 channels at 32/16/8
pixels, batch 8, 64 output channels), a squared-output loss, backward, SGD (momentum 0.9, weight decay),
``zero_grad(set_to_none=True)``. B is the same step on ``fix(neck, arch)`` with its own optimizer: the
same operations without reading the choices, and (BiFPN) without the layers and weights the arch drops.
A fresh random arch per round; B uses the fixed neck of that round's arch, built and warmed up first.
"""
from __future__ import annotations

import argparse
import random

import torch
from _timing import add_process_arguments, interleave, measure_in_processes, verdict
from torch import nn

from tasknas.core import fix, sample, set_arch, space_of
from tasknas.plugins.detection import SearchableBiFPN, SearchableNASFPN

GOAL = 1.02


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)


def step(model: nn.Module, optimizer: torch.optim.Optimizer, feats: list[torch.Tensor]) -> None:
    loss = sum(o.square().mean() for o in model(feats))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def build(kind: str) -> nn.Module:
    if kind == "nasfpn":
        return SearchableNASFPN([32, 64, 128], 64, num_outs=5, stack_times=2, norm_cfg=dict(type="BN"))
    return SearchableBiFPN([32, 64, 128], 64, num_outs=5, num_layers=3)


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    result = {}
    for kind in ("nasfpn", "bifpn"):
        torch.manual_seed(0)
        rng = random.Random(0)
        neck = build(kind).train()
        space = space_of(neck)
        feats = [torch.randn(args.batch, c, 32 >> i, 32 >> i) for i, c in enumerate((32, 64, 128))]
        opt = make_optimizer(neck)
        for _ in range(3):  # momentum buffers for most weights, as after the first steps of supernet training
            set_arch(neck, sample(space, rng))
            step(neck, opt, feats)
        archs = [sample(space, rng) for _ in range(args.rounds + 1)]
        fixed = []
        for arch in archs:
            net = fix(neck, arch).train()
            net_opt = make_optimizer(net)
            step(net, net_opt, feats)  # warm-up: momentum buffers exist
            fixed.append((net, net_opt))
        it_a, it_b = iter(archs), iter(fixed)

        def supernet_step() -> None:
            set_arch(neck, next(it_a))
            step(neck, opt, feats)

        def fixed_step() -> None:
            net, net_opt = next(it_b)
            step(net, net_opt, feats)

        timings = interleave(supernet_step, fixed_step, args.rounds, warmup=1)
        result[f"{kind}_ratio"] = timings.ratio()
        result[f"{kind}_supernet_ms"] = timings.median_a() * 1e3
        result[f"{kind}_fixed_ms"] = timings.median_b() * 1e3
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed steps of A and of B per ratio (default 20)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    add_process_arguments(parser)
    args = parser.parse_args()
    r = measure_in_processes(args, measure)
    for kind in ("nasfpn", "bifpn"):
        ratio = r[f"{kind}_ratio"]
        print(f"{kind} train step, random arch: supernet / fixed = {ratio:.3f}   goal <= {GOAL}  "
              f"({verdict(ratio, GOAL)})   context: {r[f'{kind}_supernet_ms']:.1f} ms vs "
              f"{r[f'{kind}_fixed_ms']:.1f} ms (batch {args.batch}, 1 thread)")


if __name__ == "__main__":
    main()
