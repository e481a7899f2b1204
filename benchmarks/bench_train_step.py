"""Supernet train step vs the same arch as a static net (goal: ratio <= 1.02).

A SPOS-style step on a reduced ShuffleNet supernet (stem 16, widths 32/64/128/256, repeats 4/4/8/4, 10
classes, 64x64 inputs): ``set_arch`` + forward + cross-entropy + backward + SGD (momentum 0.9, weight
decay) + ``zero_grad(set_to_none=True)``. B is the same step on ``fix(model, arch)``, which runs exactly the
same operations without the choice bookkeeping and with an optimizer over the chosen weights only.

Two ratios: the same arch in every round, and a fresh random arch per round (B then uses the static net
of that round's arch, built and warmed up before timing).
"""
from __future__ import annotations

import argparse
import random

import torch
from _timing import add_process_arguments, interleave, measure_in_processes, seconds, verdict
from torch import nn

from tasknas.core import fix, sample, set_arch, space_of
from tasknas.core.spaces.shufflenet import ShuffleNetSupernet

GOAL = 1.02


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)


def step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor) -> None:
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = random.Random(0)
    supernet = ShuffleNetSupernet(16, (32, 64, 128, 256), (4, 4, 8, 4), num_classes=10).train()
    space = space_of(supernet)
    images = torch.randn(args.batch, 3, args.size, args.size)
    labels = torch.randint(0, 10, (args.batch,))
    super_opt = make_optimizer(supernet)
    # Give every option its momentum buffer first, as after the first steps of real supernet training.
    for option in space[next(iter(space))]:
        set_arch(supernet, {key: option for key in space})
        step(supernet, super_opt, images, labels)

    # Same arch every round.
    arch = sample(space, rng)
    static = fix(supernet, arch).train()
    static_opt = make_optimizer(static)

    def supernet_step() -> None:
        set_arch(supernet, arch)
        step(supernet, super_opt, images, labels)

    same = interleave(supernet_step, lambda: step(static, static_opt, images, labels), args.rounds)

    # A fresh random arch per round; B is the static net of that round's arch.
    archs = [sample(space, rng) for _ in range(args.rounds + 1)]
    statics = []
    for a in archs:
        net = fix(supernet, a).train()
        opt = make_optimizer(net)
        step(net, opt, images, labels)  # warm-up: momentum buffers exist, as for the supernet's options
        statics.append((net, opt))
    it_a, it_b = iter(archs), iter(statics)

    def random_supernet_step() -> None:
        set_arch(supernet, next(it_a))
        step(supernet, super_opt, images, labels)

    def random_static_step() -> None:
        net, opt = next(it_b)
        step(net, opt, images, labels)

    fresh = interleave(random_supernet_step, random_static_step, args.rounds, warmup=1)
    set_arch_s = min(seconds(lambda: set_arch(supernet, arch)) for _ in range(20))
    return {"same_ratio": same.ratio(), "random_ratio": fresh.ratio(),
            "supernet_ms": same.median_a() * 1e3, "static_ms": same.median_b() * 1e3,
            "set_arch_us": set_arch_s * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed steps of A and of B per ratio (default 20)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--size", type=int, default=64, help="input height and width (default 64)")
    add_process_arguments(parser)
    args = parser.parse_args()
    r = measure_in_processes(args, measure)
    print(f"train step, same arch:   supernet / static = {r['same_ratio']:.3f}   goal <= {GOAL}  "
          f"({verdict(r['same_ratio'], GOAL)})")
    print(f"train step, random arch: supernet / static = {r['random_ratio']:.3f}   goal <= {GOAL}  "
          f"({verdict(r['random_ratio'], GOAL)})")
    print(f"  context: supernet step {r['supernet_ms']:.1f} ms, static step {r['static_ms']:.1f} ms, "
          f"set_arch {r['set_arch_us']:.0f} us (batch {args.batch}, {args.size}x{args.size}, 1 thread)")


if __name__ == "__main__":
    main()
