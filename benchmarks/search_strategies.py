"""Search strategies on offline ground truth: which one returns the best arch for a budget of evaluations.

NAS-Bench-Graph (Qin et al., NeurIPS 2022 Datasets and Benchmarks; pip ``nas-bench-graph``, which ships the
tables) trained every GNN of its space — a 4-node DAG macro structure (9 of them) × 9 operations per node:
26,206 distinct networks — on 9 graph datasets. Here the space is the table's own encoding: ``link`` (the
macro structure) and ``op1`` … ``op4``, 9 × 9^4 = 59,049 archs of which the 9 all-``skip`` ones are not in
the table (a constraint filters them before scoring, as a cost constraint would). Archs that are the same
network (isomorphic DAGs) share one table entry, and scoring two of them costs two evaluations, as in a
real search.

For each table (cs, physics, computers), noise level, budget and seed, every strategy runs ``evolve`` at
that budget with that seed and scores ``100 × validation accuracy`` (points) — with ``--noise 1`` plus a
fixed Gaussian error of 1 point per distinct network (the same error each time it is scored; drawn per
seed, the same for every strategy: the supernet-proxy case). The returned arch is judged on the
noise-free table:

* **rank**: its position among the 26,206 networks by validation accuracy (1 = best; ties share their
  mid-rank);
* **regret**: best validation accuracy of the table minus the returned one, in points (and the same for
  the test accuracy, in the JSON);
* **evals**: distinct archs scored (never above the budget);
* **overhead**: the strategy's own time per evaluation (the search's wall time minus the time inside the
  score function, divided by the evaluations), µs.

Strategies: ``random``; ``spos`` and ``detnas`` (the papers' settings, ``EvolutionConfig.preset``, cut by the
budget); ``evolution`` (the same algorithm planned around the budget); ``regularized`` (aging evolution);
``predictor`` (predictor-guided evolution); all at their defaults for the budget. Per seed all strategies
see the same noise, so differences are paired: the summary gives each strategy's mean rank against the
default strategy's with the standard error of the paired difference.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/search_strategies.py [--seeds 200] [--quick] [--jobs 1]
        [--tables cs physics computers] [--budgets 100 300] [--noise 0 1] [--out runs/search_strategies]

Prints one table and writes ``search_strategies.json`` (settings, every run, the summary) and
``search_strategies.png`` (mean rank vs budget per strategy) under ``--out``. No training, no download.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tasknas.core import Arch, EvolutionConfig, Space, evolve
from tasknas.core.state import atomic_write_text

try:
    from numpy._core.multiarray import scalar as _SCALAR  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import scalar as _SCALAR

TABLES = ("cs", "physics", "computers")
DEFAULT = EvolutionConfig().strategy
STRATEGIES: dict[str, Callable[[int, int], EvolutionConfig]] = {
    "random": lambda budget, seed: EvolutionConfig(strategy="random", budget=budget, seed=seed),
    "spos": lambda budget, seed: EvolutionConfig.preset("spos", budget=budget, seed=seed),
    "detnas": lambda budget, seed: EvolutionConfig.preset("detnas", budget=budget, seed=seed),
    "evolution": lambda budget, seed: EvolutionConfig(strategy="evolution", budget=budget, seed=seed),
    "regularized": lambda budget, seed: EvolutionConfig(strategy="regularized", budget=budget, seed=seed),
    "predictor": lambda budget, seed: EvolutionConfig(strategy="predictor", budget=budget, seed=seed),
}


class _TableUnpickler(pickle.Unpickler):
    """The tables are pickled dicts of floats and numpy scalars: admit exactly those, run nothing else."""

    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            return _SCALAR
        if module == "numpy" and name == "dtype":
            return np.dtype
        raise pickle.UnpicklingError(f"refused {module}.{name}: the NAS-Bench-Graph tables hold plain numbers only")


def _package():
    try:
        import nas_bench_graph
    except ImportError:
        sys.exit("this benchmark needs the NAS-Bench-Graph tables: pip install -c requirements/constraints.txt "
                 "nas-bench-graph (the package ships them; nothing is downloaded at run time)")
    return nas_bench_graph


class Table:
    """One NAS-Bench-Graph table: validation/test accuracy (points) and the validation rank of every network."""

    def __init__(self, name: str):
        nbg = _package()
        path = Path(nbg.__file__).parent / "light" / f"{name}.bench"
        with open(path, "rb") as f:
            bench = _TableUnpickler(f).load()
        self.name = name
        self.size = len(bench)
        top = max(bench) + 1
        self.valid = [math.nan] * top
        self.test = [math.nan] * top
        for h, info in bench.items():
            self.valid[h] = 100.0 * float(info["valid_perf"])
            self.test[h] = 100.0 * float(info["perf"])
        values = np.array([self.valid[h] for h in bench])
        order = np.sort(values)[::-1]
        better = np.searchsorted(-order, -values, side="left")  # networks strictly better
        ties = np.searchsorted(-order, -values, side="right") - better
        self.rank = [math.nan] * top
        for h, b, t in zip(bench, better, ties):
            self.rank[h] = float(b + (t + 1) / 2)
        self.best_valid = float(values.max())
        self.best_test = max(self.test[h] for h in bench)


def space_and_hashes() -> tuple[Space, dict[Arch, int | None]]:
    nbg = _package()
    links = ["".join(map(str, lk)) for lk in nbg.link_list]
    ops = list(nbg.gnn_list)
    space = Space({"link": links, **{f"op{i}": ops for i in range(1, 5)}})
    hashes: dict[Arch, int | None] = {}
    for lk, o1, o2, o3, o4 in itertools.product(links, ops, ops, ops, ops):
        arch = Arch((("link", lk), ("op1", o1), ("op2", o2), ("op3", o3), ("op4", o4)))
        try:
            hashes[arch] = nbg.Arch([int(c) for c in lk], [o1, o2, o3, o4]).valid_hash()
        except Exception:  # the all-skip networks have no hash
            hashes[arch] = None
    return space, hashes


_STATE: dict = {}


def _setup(tables: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    space, hashes = space_and_hashes()
    _STATE.update(space=space, hashes=hashes, tables={name: Table(name) for name in tables})


class InTable:
    """The constraint: the arch is a network of the table."""

    def __init__(self, hashes: dict[Arch, int | None], table: Table):
        self.hashes, self.valid = hashes, table.valid

    def __call__(self, arch: Arch) -> bool:
        h = self.hashes[arch]
        return h is not None and h < len(self.valid) and not math.isnan(self.valid[h])

    def __str__(self) -> str:
        return "in the NAS-Bench-Graph table"


def run_seed(job: tuple[str, float, int, list[int], list[str]]) -> list[dict]:
    """Every strategy at every budget for one (table, noise, seed)."""
    name, noise, seed, budgets, strategies = job
    space, hashes, table = _STATE["space"], _STATE["hashes"], _STATE["tables"][name]
    error = (np.random.default_rng([seed, TABLES.index(name) if name in TABLES else 99]).standard_normal(
        len(table.valid)) * noise).tolist()
    constraint = InTable(hashes, table)
    rows = []
    for budget in budgets:
        for strategy in strategies:
            if not _fits(strategy, budget):
                continue
            inside = [0.0]

            def score(arch: Arch) -> float:
                t = time.perf_counter()
                h = hashes[arch]
                value = table.valid[h] + error[h]
                inside[0] += time.perf_counter() - t
                return value

            start = time.perf_counter()
            result = evolve(space, score, STRATEGIES[strategy](budget, seed), constraints=[constraint])
            wall = time.perf_counter() - start
            h = hashes[result.best]
            evals = len(result.records)
            assert evals <= budget and len({r.arch for r in result.records}) == evals
            rows.append({"table": name, "noise": noise, "budget": budget, "strategy": strategy, "seed": seed,
                         "rank": table.rank[h], "regret": table.best_valid - table.valid[h],
                         "test_regret": table.best_test - table.test[h], "evals": evals,
                         "overhead_us": 1e6 * (wall - inside[0]) / evals})
    return rows


def _fits(strategy: str, budget: int) -> bool:
    """Whether the strategy runs at this budget (a paper preset's population of 50 needs a budget of 50)."""
    try:
        STRATEGIES[strategy](budget, 0)
    except ValueError:
        return False
    return True


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, se


def summarise(rows: list[dict], default: str) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["table"], r["noise"], r["budget"], r["strategy"]), []).append(r)
    out = []
    for (name, noise, budget, strategy), runs in groups.items():
        runs.sort(key=lambda r: r["seed"])
        ranks = [r["rank"] for r in runs]
        mean, se = _mean_se(ranks)
        regret, regret_se = _mean_se([r["regret"] for r in runs])
        test_regret, test_regret_se = _mean_se([r["test_regret"] for r in runs])
        entry = {"table": name, "noise": noise, "budget": budget, "strategy": strategy, "seeds": len(runs),
                 "mean_rank": mean, "mean_rank_se": se, "median_rank": statistics.median(ranks),
                 "regret": regret, "regret_se": regret_se, "test_regret": test_regret,
                 "test_regret_se": test_regret_se, "evals_mean": statistics.fmean(r["evals"] for r in runs),
                 "evals_max": max(r["evals"] for r in runs),
                 "overhead_us": statistics.median(r["overhead_us"] for r in runs)}
        ref = groups.get((name, noise, budget, default))
        if ref is not None and strategy != default:
            ref = sorted(ref, key=lambda r: r["seed"])
            paired = [r["rank"] - d["rank"] for r, d in zip(runs, ref) if r["seed"] == d["seed"]]
            diff, diff_se = _mean_se(paired)
            entry.update(rank_minus_default=diff, rank_minus_default_se=diff_se)
        out.append(entry)
    order = {s: i for i, s in enumerate(STRATEGIES)}
    out.sort(key=lambda e: (TABLES.index(e["table"]) if e["table"] in TABLES else 99, e["noise"], e["budget"],
                            order[e["strategy"]]))
    return out


def print_table(summary: list[dict], default: str) -> None:
    head = (f"{'table':<10}{'noise':>6}{'budget':>7}  {'strategy':<12}{'mean rank ± s.e.':>20}{'median':>8}"
            f"{'regret (pts) ± s.e.':>22}{'evals':>7}{'µs/eval':>9}  {'vs ' + default + ' (rank diff ± s.e.)':>30}")
    print(head)
    print("-" * len(head))
    for e in summary:
        diff = ""
        if "rank_minus_default" in e:
            diff = f"{e['rank_minus_default']:+9.1f} ± {e['rank_minus_default_se']:.1f}"
        print(f"{e['table']:<10}{e['noise']:>6g}{e['budget']:>7}  {e['strategy']:<12}"
              f"{e['mean_rank']:>12.1f} ± {e['mean_rank_se']:<6.1f}{e['median_rank']:>8.1f}"
              f"{e['regret']:>14.3f} ± {e['regret_se']:<6.3f}{e['evals_mean']:>7.0f}{e['overhead_us']:>9.0f}"
              f"  {diff:>30}")


def goals(summary: list[dict], default: str) -> list[str]:
    """The issue's goal for the default strategy, checked per table, noise level and budget."""
    index = {(e["table"], e["noise"], e["budget"], e["strategy"]): e for e in summary}
    lines = []
    for (name, noise, budget, strategy), e in index.items():
        if strategy != default:
            continue
        parts = []
        rnd = index.get((name, noise, budget, "random"))
        if rnd:
            ratio = rnd["mean_rank"] / e["mean_rank"]
            parts.append(f"{ratio:.1f}x better mean rank than random ({'met' if ratio >= 2 else 'NOT met'})")
        for other in ("spos", "regularized"):
            o = index.get((name, noise, budget, other))
            if o:
                d, se = o["rank_minus_default"], o["rank_minus_default_se"]
                verdict = "better beyond 2 s.e." if d > 2 * se else ("better" if d > 0 else "NOT better")
                parts.append(f"vs {other}: {d:+.1f} ± {se:.1f} ({verdict})")
        lines.append(f"{name} noise {noise:g} budget {budget}: " + "; ".join(parts))
    return lines


def plot(summary: list[dict], path: Path, tables: list[str], noises: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(noises), len(tables), figsize=(4.2 * len(tables), 3.4 * len(noises)),
                             squeeze=False)
    for i, noise in enumerate(noises):
        for j, name in enumerate(tables):
            ax = axes[i][j]
            for strategy in STRATEGIES:
                pts = sorted((e["budget"], e["mean_rank"], e["mean_rank_se"]) for e in summary
                             if e["table"] == name and e["noise"] == noise and e["strategy"] == strategy)
                if pts:
                    b, m, s = zip(*pts)
                    ax.errorbar(b, m, yerr=[2 * x for x in s], marker="o", capsize=3, label=strategy)
            ax.set_yscale("log")
            ax.set_xlabel("budget (archs scored)")
            ax.set_ylabel("mean true rank (log; ± 2 s.e.)")
            ax.set_title(f"{name}, noise {noise:g} pt")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="seeds per setting (default 200)")
    parser.add_argument("--quick", action="store_true", help="20 seeds: a smoke run of a few minutes")
    parser.add_argument("--tables", nargs="+", default=list(TABLES), help="NAS-Bench-Graph tables")
    parser.add_argument("--budgets", nargs="+", type=int, default=[100, 300])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0, 1.0], help="score noise, points (std)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--out", type=Path, default=Path("runs/search_strategies"))
    args = parser.parse_args()
    seeds = 20 if args.quick else args.seeds
    nbg = _package()
    known = sorted(p.stem for p in (Path(nbg.__file__).parent / "light").glob("*.bench"))
    for name in args.tables:
        if name not in known:
            parser.error(f"unknown table {name!r}; nas-bench-graph ships {known}")
    for budget in args.budgets:
        left_out = [s for s in args.strategies if not _fits(s, budget)]
        if left_out:
            print(f"budget {budget}: left out {left_out} (their population exceeds the budget)", file=sys.stderr)
    jobs = [(name, noise, seed, args.budgets, args.strategies)
            for name in args.tables for noise in args.noise for seed in range(seeds)]
    start = time.perf_counter()
    rows: list[dict] = []
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs, _setup, (args.tables,)) as pool:
            for i, got in enumerate(pool.imap(run_seed, jobs, chunksize=4)):
                rows += got
                _tick(i + 1, len(jobs), start)
    else:
        _setup(args.tables)
        for i, job in enumerate(jobs):
            rows += run_seed(job)
            _tick(i + 1, len(jobs), start)
    elapsed = time.perf_counter() - start
    print(file=sys.stderr)
    default = DEFAULT if DEFAULT in args.strategies else args.strategies[0]
    summary = summarise(rows, default)
    loaded = _STATE.get("tables") or {name: Table(name) for name in args.tables}  # workers loaded their own
    tables = {name: {"networks": t.size, "best_valid": t.best_valid, "best_test": t.best_test}
              for name, t in loaded.items()}
    print(f"NAS-Bench-Graph (pip nas-bench-graph {_version()}): {len(jobs)} (table, noise, seed) "
          f"settings x {len(args.budgets)} budgets x {len(args.strategies)} strategies in {elapsed:.0f} s; "
          f"rank among the table's networks by noise-free validation accuracy (1 = best); default strategy: "
          f"{DEFAULT}\n")
    print_table(summary, default)
    print()
    checks = goals(summary, default)
    for line in checks:
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "search_strategies.json", json.dumps(
        {"settings": {**vars(args), "out": str(args.out), "seeds": seeds, "default": DEFAULT,
                      "seconds": elapsed}, "tables": tables, "summary": summary, "goals": checks, "runs": rows}) + "\n")
    plot(summary, args.out / "search_strategies.png", args.tables, args.noise)
    print(f"\nwrote {args.out / 'search_strategies.json'} and {args.out / 'search_strategies.png'}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nas-bench-graph")
    except PackageNotFoundError:
        return "?"


def _tick(done: int, total: int, start: float) -> None:
    if sys.stderr.isatty() or done == total or done % 20 == 0:
        left = (time.perf_counter() - start) / done * (total - done)
        print(f"\r{done}/{total} settings, ~{left:.0f} s left ", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
