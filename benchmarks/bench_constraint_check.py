"""Constraint check per candidate: cost-table lookup vs counting the FLOPs of the fixed subnet.

On the DetNAS small space (``forward`` is ``forward_features`` without a classifier), A checks a
candidate from the cost table built once at 224x224: ``table.macs(arch)`` and ``constraint(arch)``. B
does it the slow way: ``fix(model, arch)`` and ``count_flops`` of the subnet on a 224x224 input. Each
round, A checks ``--lookups`` random archs and B one; the printed speedup is the median over rounds of
B's time per candidate over A's. Both give the same number: the script also checks that the table's
FLOPs equal the counted FLOPs for every arch B counts.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from _timing import add_process_arguments, interleave, measure_in_processes

from tasknas.core import build_cost_table, count_flops, create_space, fix, sample, space_of


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = random.Random(0)
    model = create_space("detnas_shufflenet_small").eval()
    space = space_of(model)
    image = torch.randn(1, 3, args.size, args.size)
    start = time.perf_counter()
    table = build_cost_table(model, image)
    build_s = time.perf_counter() - start
    lo, hi = table.range("macs")
    constraint = table.constraint("macs", hi=(lo + hi) / 2)
    lookup_archs = [sample(space, rng) for _ in range(args.lookups)]
    count_archs = iter([sample(space, rng) for _ in range(args.rounds + 1)])
    mismatches = []

    def from_table() -> None:
        for arch in lookup_archs:
            table.macs(arch)
            constraint(arch)

    def from_subnet() -> None:
        arch = next(count_archs)
        flops = count_flops(fix(model, arch), image)
        if flops != table.flops(arch):
            mismatches.append((arch, flops, table.flops(arch)))

    t = interleave(from_table, from_subnet, args.rounds, warmup=1)
    if mismatches:
        raise AssertionError(f"cost table disagrees with count_flops on {len(mismatches)} archs: {mismatches[0]}")
    speedup = statistics.median(b / (a / args.lookups) for a, b in zip(t.a, t.b))
    return {"speedup": speedup, "table_us": t.median_a() / args.lookups * 1e6, "count_ms": t.median_b() * 1e3,
            "build_s": build_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds (default 8)")
    parser.add_argument("--lookups", type=int, default=1000,
                        help="archs checked from the table per round (default 1000)")
    parser.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    add_process_arguments(parser)
    args = parser.parse_args()
    r = measure_in_processes(args, measure)
    print(f"constraint check: fix + count_flops / cost-table lookup = {r['speedup']:.0f}x faster from the table  "
          f"(design: ~15 us vs ~40 ms per candidate, ~2700x)")
    print(f"  context: table {r['table_us']:.1f} us per candidate (macs + constraint), fix + count_flops "
          f"{r['count_ms']:.1f} ms per candidate at {args.size}x{args.size}; table built once in {r['build_s']:.1f} s "
          f"(1 thread); table FLOPs equal counted FLOPs on every counted arch")


if __name__ == "__main__":
    main()
