"""Timing for the benchmarks: A and B interleaved in one process, medians over rounds and over processes.

Each round times A and B back to back, alternating which goes first (A,B then B,A), so slow drifts of a
shared machine hit both alike. A ratio is the median over rounds of the per-round ratio A/B. With
``--processes N`` a script re-runs itself in N fresh processes, one after another, and reports the median
of their per-process results. Only ratios are compared with goals; absolute times are context.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

_RESULT_PREFIX = "RESULT "


@dataclass
class Timings:
    """Per-round seconds of A and B, measured interleaved."""

    a: list[float]
    b: list[float]

    def ratio(self) -> float:
        """Median over rounds of A/B."""
        return statistics.median(ta / tb for ta, tb in zip(self.a, self.b))

    def median_a(self) -> float:
        return statistics.median(self.a)

    def median_b(self) -> float:
        return statistics.median(self.b)


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(a: Callable[[], object], b: Callable[[], object], rounds: int, warmup: int = 1) -> Timings:
    """Time ``a`` and ``b`` once per round each, alternating their order; ``warmup`` untimed rounds first."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}")
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for i in range(rounds):
        if i % 2 == 0:
            ta.append(seconds(a))
            tb.append(seconds(b))
        else:
            tb.append(seconds(b))
            ta.append(seconds(a))
    return Timings(ta, tb)


def add_process_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=1,
                        help="run the measurement in this many fresh processes and report the median (default 1)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def measure_in_processes(args: argparse.Namespace, measure: Callable[[argparse.Namespace], dict[str, float]]
                         ) -> dict[str, float]:
    """``measure(args)`` here, or, with ``--processes N > 1``, the per-key median of N fresh processes.

    A child process prints its result as one JSON line and exits; the parent prints each child's result.
    """
    if args.child:
        result = measure(args)
        print(_RESULT_PREFIX + json.dumps(result), flush=True)
        sys.exit(0)
    if args.processes <= 1:
        return measure(args)
    results = []
    for i in range(args.processes):
        done = subprocess.run([sys.executable, sys.argv[0], *sys.argv[1:], "--child"], capture_output=True,
                              text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"process {i + 1} failed (exit status {done.returncode}):\n"
                               f"{done.stdout[-2000:]}{done.stderr[-4000:]}")
        result = json.loads(lines[-1][len(_RESULT_PREFIX):])
        print(f"  process {i + 1}/{args.processes}: " + ", ".join(f"{k}={v:.4g}" for k, v in result.items()),
              flush=True)
        results.append(result)
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def verdict(ratio: float, goal: float) -> str:
    return "meets the goal" if ratio <= goal else "MISSES the goal"
