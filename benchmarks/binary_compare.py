"""Which binary search to run, at what cost: BATS, BNAS (W and W+A), CP-NAS and random genotypes, Fashion-MNIST.

Every algorithm gets the same budget: the same seeded ``--search-images`` (split 50/50 into the weight part and
the held-out part), ``--search-epochs`` epochs (BATS: half with binary activations, half fully binary; BNAS:
alpha frozen for the first epoch, then one op-space reduction per epoch until one op per edge remains;
CP-NAS: one warm-up epoch, then one round per epoch, 7 rounds for the 8-op space) and ``--search-batch``.
Every genotype, searched or random, gets the same retraining (``--train-images`` for ``--train-epochs``,
scored on ``--test-images`` test images), in the binary mode of its row. Random genotypes are drawn
uniformly from the same space (no ``none``), ``--randoms`` per space and retraining mode; each searched row
is compared with the random genotypes of its space and mode (difference of test accuracy in units of their
standard deviation). The full-precision twin of the best searched genotype is retrained with real convs.

Prints one table and writes it as JSON and a PNG bar plot (``--out``). Not part of CI: a short CPU budget,
far from the papers' runs; with ``--seeds A B`` every row is repeated per seed (search and retraining), and
the table gives mean ± std over seeds.

    OMP_NUM_THREADS=1 nice python benchmarks/binary_compare.py --out runs/binary_compare
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasknas.core import sample  # noqa: E402
from tasknas.core.state import atomic_write_text  # noqa: E402
from tasknas.plugins.binary import trainer  # noqa: E402
from tasknas.plugins.binary.config import load_config  # noqa: E402
from tasknas.plugins.binary.genotype import arch_to_genotype  # noqa: E402
from tasknas.plugins.binary.networks import arch_space, build_fixed_network  # noqa: E402
from tasknas.plugins.binary.ops import BinaryConv2d  # noqa: E402

CONFIGS = ROOT / "configs" / "binary"
MODE_LABEL = {"weights": "W", "weights_activations": "W+A", "real": "FP"}


def binary_macs(cfg, arch, mode: str) -> int:
    """Multiply-accumulates of the convs that binarize weights or activations, on one 28x28 image."""
    model = build_fixed_network(cfg.model, arch_to_genotype(arch, cfg.model.steps), mode, 1, 10,
                                binary_activations=trainer.binarizes_activations([cfg.train.mode]))
    total = [0]

    def hook(conv, inputs, output):
        if conv.mode != "real":
            fan_in = (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]
            total[0] += output[0].numel() * fan_in

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, BinaryConv2d)]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in handles:
        h.remove()
    return total[0]


def setups(epochs: int) -> dict[str, tuple[str, list[str]]]:
    """Row name -> (config name, overrides) of every searched row."""
    half = max(1, epochs // 2)
    return {
        "BATS": ("bats", [f"search.stages=[[activations,{half}],[weights_activations,{epochs - half}]]",
                          "train.mode=weights_activations"]),
        "BNAS (W)": ("bnas", [f"search.stages=[[weights,{epochs}]]", "train.mode=weights"]),
        "BNAS (W+A)": ("bnas", [f"search.stages=[[weights_activations,{epochs}]]", "train.mode=weights_activations"]),
        "CP-NAS": ("cpnas", [f"search.stages=[[weights_activations,{epochs}]]", "train.mode=weights_activations"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/binary_compare"))
    parser.add_argument("--search-images", type=int, default=1000)
    parser.add_argument("--search-epochs", type=int, default=8)
    parser.add_argument("--search-batch", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=3000)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--randoms", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", help="searched rows to run (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every row, e.g. model.search_layers=3")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    quiet = open("/dev/null", "w")
    rows, table_path = [], args.out / "binary_compare.json"

    def record(row: dict) -> None:
        rows.append(row)
        atomic_write_text(table_path, json.dumps({"settings": {**vars(args), "out": str(args.out)}, "rows": rows},
                                                 indent=1) + "\n")
        print(f"{row['name']:<26} seed {row['seed']} {row['mode']:<3} test {row['test_acc']:.4f}  search "
              f"{row['search_seconds']:.0f}s retrain {row['train_seconds']:.0f}s  {row['genotype']}", flush=True)

    def retrain(name: str, cfg, arch, folder: Path, seed: int, search_seconds: float, full_precision=False) -> dict:
        result = trainer.run_train(cfg, arch, folder, full_precision=full_precision, stream=quiet)
        row = {"name": name, "seed": seed, "mode": MODE_LABEL[result["mode"]], "test_acc": result["test_acc"],
               "search_seconds": search_seconds, "train_seconds": result["train_seconds"], "params": result["params"],
               "binary_macs": binary_macs(cfg, arch, result["mode"]), "genotype": result["genotype"]}
        record(row)
        return row

    searched = {}
    chosen = setups(args.search_epochs)
    for name in args.only or list(chosen):
        algo, extra = chosen[name]
        for seed in args.seeds:
            common = [f"data.search_subset={args.search_images}", f"data.train_subset={args.train_images}",
                      f"data.test_subset={args.test_images}", f"data.batch_size={args.search_batch}",
                      f"train.epochs={args.train_epochs}", f"seed={seed}", *args.set]
            cfg = load_config(CONFIGS / f"{algo}_fashion_mnist.py", common + extra)
            folder = args.out / f"{name.replace(' ', '_').replace('(', '').replace(')', '')}_seed{seed}"
            began = time.monotonic()
            trainer.run_search(cfg, folder / "search", stream=quiet)
            seconds = time.monotonic() - began
            from tasknas.core import load_arch

            arch = load_arch(folder / "search" / "genotype.arch.json", arch_space(cfg.model))
            searched[(name, seed)] = (cfg, arch, retrain(name, cfg, arch, folder / "train", seed, seconds))
    # random genotypes of every (space, retraining mode) that a searched row used, retrained alike
    groups = {}
    for (_, seed), (cfg, _, _) in searched.items():
        groups.setdefault((cfg.model.op_set, cfg.train.mode, seed), cfg)
    randoms = {}
    for (op_set, mode, seed), cfg in groups.items():
        rng = random.Random(1000 + seed)
        for i in range(args.randoms):
            arch = sample(arch_space(cfg.model), rng)
            label = f"random {op_set.upper()} space {MODE_LABEL[mode]}"
            folder = args.out / f"random_{op_set}_{mode}_{i}_seed{seed}"
            row = retrain(f"{label} #{i + 1}", cfg, arch, folder, seed, 0.0)
            randoms.setdefault((op_set, mode), []).append(row["test_acc"])
    best = max(searched, key=lambda k: searched[k][2]["test_acc"])
    cfg, arch, row = searched[best]
    retrain(f"{best[0]} full-precision twin", cfg, arch, args.out / "best_fp", best[1], row["search_seconds"],
            full_precision=True)
    table = summarise(rows, searched, randoms)
    atomic_write_text(table_path, json.dumps({"settings": {**vars(args), "out": str(args.out)}, "rows": rows,
                                              "table": table}, indent=1) + "\n")
    print_table(table, args)
    plot(table, args.out / "binary_compare.png")
    print(f"table: {table_path}\nplot: {args.out / 'binary_compare.png'}")
    return 0


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict], searched: dict, randoms: dict) -> list[dict]:
    """One line per searched algorithm (mean over seeds), per random group and for the twin."""
    table = []
    space_mode = {name: (cfg.model.op_set, cfg.train.mode) for (name, _), (cfg, _, _) in searched.items()}
    for name in dict.fromkeys(n for n, _ in searched):
        mine = [r for r in rows if r["name"] == name]
        acc, acc_std = _mean_std([r["test_acc"] for r in mine])
        ref = randoms.get(space_mode[name], [])
        r_mean, r_std = _mean_std(ref) if ref else (float("nan"), float("nan"))
        table.append({"name": name, "mode": mine[0]["mode"], "test_acc": acc, "test_acc_std": acc_std,
                      "seeds": len(mine), "search_seconds": statistics.mean(r["search_seconds"] for r in mine),
                      "train_seconds": statistics.mean(r["train_seconds"] for r in mine),
                      "params": mine[0]["params"], "binary_macs": mine[0]["binary_macs"],
                      "vs_random": acc - r_mean, "vs_random_sigmas": (acc - r_mean) / r_std if r_std else None,
                      "genotype": mine[0]["genotype"]})
    for (op_set, mode), accs in randoms.items():
        mine = [r for r in rows if r["name"].startswith(f"random {op_set.upper()} space {MODE_LABEL[mode]} #")]
        acc, acc_std = _mean_std(accs)
        table.append({"name": f"random {op_set.upper()} space", "mode": MODE_LABEL[mode], "test_acc": acc,
                      "test_acc_std": acc_std, "seeds": len(accs), "search_seconds": 0.0,
                      "train_seconds": statistics.mean(r["train_seconds"] for r in mine),
                      "params": round(statistics.mean(r["params"] for r in mine)),
                      "binary_macs": round(statistics.mean(r["binary_macs"] for r in mine)),
                      "vs_random": None, "vs_random_sigmas": None, "genotype": ""})
    twin = [r for r in rows if r["name"].endswith("full-precision twin")]
    for r in twin:
        table.append({**{k: r[k] for k in ("name", "mode", "test_acc", "search_seconds", "train_seconds", "params",
                                            "binary_macs", "genotype")},
                      "test_acc_std": 0.0, "seeds": 1, "vs_random": None, "vs_random_sigmas": None})
    return table


def print_table(table: list[dict], args) -> None:
    print(f"\nFashion-MNIST; search {args.search_images} images ({args.search_epochs} epochs, batch "
          f"{args.search_batch}); retrain {args.train_images} images x {args.train_epochs} epochs; test "
          f"{args.test_images} images; seeds {args.seeds}; overrides {args.set}; one thread")
    print("| row | binary | test acc. (%) | vs random of its space | search s | retrain s | params | binary MMACs |")
    print("|---|---|---|---|---|---|---|---|")
    for t in table:
        n = t["seeds"]
        acc = f"{100 * t['test_acc']:.2f}" + (f" ± {100 * t['test_acc_std']:.2f} (n={n})" if n > 1 else "")
        if t["vs_random"] is None:
            vs = "—"
        else:
            sig = t["vs_random_sigmas"]
            vs = f"{100 * t['vs_random']:+.2f} pp" + ("" if sig is None else f" ({sig:+.1f} σ)")
        print(f"| {t['name']} | {t['mode']} | {acc} | {vs} | {t['search_seconds']:.0f} | {t['train_seconds']:.0f} | "
              f"{t['params']:,} | {t['binary_macs'] / 1e6:.2f} |")


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(table) + 1))
    names = [f"{t['name']} ({t['mode']})" for t in table]
    ax.barh(names, [100 * t["test_acc"] for t in table], xerr=[100 * t["test_acc_std"] for t in table],
            color=["tab:gray" if t["name"].startswith("random") else "tab:orange" if t["mode"] == "FP" else "tab:blue"
                   for t in table], capsize=3)
    low = min(100 * t["test_acc"] for t in table)
    ax.set_xlim(max(0.0, low - 10), 100)
    ax.set_xlabel("test accuracy (%)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
