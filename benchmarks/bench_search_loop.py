"""Search-loop overhead: evolve() vs calling its score function directly (goal: ratio <= 1.01).

A is a full ``evolve`` over the DetNAS small space (20 choice keys) with a cost-table constraint, the cost
recorded per candidate, and the search state written to a file after every scored candidate. Its score
function does a fixed amount of real work (a matmul loop calibrated to ``--score-ms``) and returns a
deterministic value of the arch. B calls the same score function on the same archs, the same number of
times, in a plain loop. The difference is what the search itself costs: proposals (mutation, crossover,
dedup, constraints), records and the state file.

A second ratio runs the same search without a state file, to separate the cost of writing the state
from the rest of the loop. The state file goes to a temporary folder under ``--state-dir`` (default: the
system's temporary folder; a real search writes to its work dir on disk). The cost table is built once,
before timing, at ``--size`` (a small input keeps the build short; the lookup cost does not depend on it).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _timing import Timings, add_process_arguments, interleave, measure_in_processes, verdict

from tasknas.core import Arch, EvolutionConfig, SearchResult, build_cost_table, create_space, evolve, space_of

GOAL = 1.01


def calibrated_work(target_ms: float) -> tuple[torch.Tensor, int]:
    """A matrix and a number of matmuls with it that together take about ``target_ms``."""
    x = torch.randn(64, 64)
    for _ in range(20):
        x @ x

    def chunk() -> float:
        start = time.perf_counter()
        for _ in range(100):
            x @ x
        return (time.perf_counter() - start) / 100

    per_call = statistics.median(chunk() for _ in range(9))  # a median: the machine is shared and noisy
    return x, max(1, round(target_ms * 1e-3 / per_call))


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_space("detnas_shufflenet_small").eval()
    space = space_of(model)
    table = build_cost_table(model, torch.randn(1, 3, args.size, args.size))  # forward is forward_features
    lo, hi = table.range("macs")
    constraint = table.constraint("macs", hi=lo + 0.6 * (hi - lo))  # rejects a share of the random archs
    x, matmuls = calibrated_work(args.score_ms)

    def score(arch: Arch) -> float:
        for _ in range(matmuls):
            x @ x
        return float(sum((i + 1) * space[key].index(option) for i, (key, option) in enumerate(arch)))

    config = EvolutionConfig(strategy="evolution", population=args.population, topk=max(2, args.population // 5),
                             mutations=args.population * 2 // 5, crossovers=args.population * 2 // 5,
                             generations=args.generations, seed=0)
    with tempfile.TemporaryDirectory(dir=args.state_dir) as tmp:
        runs = iter(range(10 ** 9))

        def search(with_state: bool = True) -> SearchResult:
            path = Path(tmp) / f"state{next(runs)}.json" if with_state else None
            return evolve(space, score, config, constraints=[constraint], cost=table.macs, state_path=path)

        archs = [record.arch for record in search().records]

        def direct() -> None:
            for arch in archs:
                score(arch)

        with_state = interleave(search, direct, args.rounds, warmup=1)
        without_state = interleave(lambda: search(with_state=False), direct, args.rounds, warmup=1)

    def overhead_us(t: Timings) -> float:
        return statistics.median((a - b) / len(archs) for a, b in zip(t.a, t.b)) * 1e6

    return {"ratio": with_state.ratio(), "overhead_us": overhead_us(with_state),
            "ratio_no_state": without_state.ratio(), "overhead_no_state_us": overhead_us(without_state),
            "candidates": float(len(archs)), "score_ms": with_state.median_b() / len(archs) * 1e3,
            "search_s": with_state.median_a()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="timed searches (A) and direct loops (B) (default 8)")
    parser.add_argument("--population", type=int, default=10, help="population per generation (default 10)")
    parser.add_argument("--generations", type=int, default=3, help="generations (default 3)")
    parser.add_argument("--score-ms", type=float, default=100.0,
                        help="work per score call, ms (default 100: a small real candidate evaluation; the demo's "
                        "take ~100-300 ms, a detection candidate's seconds)")
    parser.add_argument("--size", type=int, default=64, help="input size of the cost table (default 64)")
    parser.add_argument("--state-dir", default=None, help="folder for the state files (default: system temp)")
    add_process_arguments(parser)
    args = parser.parse_args()
    r = measure_in_processes(args, measure)
    print(f"search loop: evolve / direct score calls = {r['ratio']:.4f}   goal <= {GOAL}  "
          f"({verdict(r['ratio'], GOAL)})")
    print(f"  without a state file:               {r['ratio_no_state']:.4f}")
    print(f"  context: search overhead per candidate {r['overhead_us']:.0f} us with the state file, "
          f"{r['overhead_no_state_us']:.0f} us without; {r['candidates']:.0f} candidates of {r['score_ms']:.1f} ms "
          f"score work each; search {r['search_s']:.2f} s (1 thread)")


if __name__ == "__main__":
    main()
