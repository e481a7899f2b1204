"""Which binary search to run, at what cost: BATS, BNAS (W and W+A), CP-NAS and random genotypes on Fashion-MNIST.

Every algorithm gets the same data budget (``--search-images`` split 50/50 into weight and held-out parts,
``--search-epochs`` epochs; CP-NAS: 1 warm-up epoch + 7 rounds needs 8, so every algorithm gets
max(--search-epochs, 8) when --same-epochs is set, else its own shipped schedule scaled to the budget), and every
genotype the same retraining (``--train-images``, ``--train-epochs``, scored on ``--test-images`` test images).
Random genotypes are drawn uniformly from each searched space (no ``none``), ``--randoms`` per space; the
full-precision twin of the best searched genotype is retrained with real convs. Prints one table and writes
it as JSON and a PNG bar plot (``--out``). Not part of CI; a short CPU budget, far from the papers' runs.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/binary_compare.py --out runs/binary_compare
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
from tasknas.plugins.binary.darts import arch_to_genotype, genotype_space  # noqa: E402
from tasknas.plugins.binary.networks import build_fixed_network, op_names  # noqa: E402
from tasknas.plugins.binary.ops import BinaryConv2d  # noqa: E402

CONFIGS = ROOT / "configs" / "binary"


def binary_macs(cfg, arch, mode: str) -> int:
    """Multiply-accumulates of the binary convs (weights or activations binarized) on one image."""
    model = build_fixed_network(cfg.model, arch_to_genotype(arch, cfg.model.steps), mode, 1, 10,
                                binary_activations=trainer.binarizes_activations([cfg.train.mode]))
    total = [0]

    def hook(conv, inputs, output):
        if conv.mode != "real":
            total[0] += output[0].numel() * (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, BinaryConv2d)]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in handles:
        h.remove()
    return total[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/binary_compare"))
    parser.add_argument("--search-images", type=int, default=1000)
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--randoms", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    common = [f"data.search_subset={args.search_images}", f"data.train_subset={args.train_images}",
              f"data.test_subset={args.test_images}", f"train.epochs={args.train_epochs}", f"seed={args.seed}",
              "data.batch_size=32"]
    e = args.search_epochs
    half = max(1, e // 2)
    setups = {
        "BATS (W+A)": ("bats", [f"search.stages=[[activations,{half}],[weights_activations,{e - half}]]",
                                f"search.arch_warmup_epochs={max(0, half - 1)}"]),
        "BNAS (W)": ("bnas", [f"search.stages=[[weights,{e + 2}]]"]),
        "BNAS (W+A)": ("bnas", [f"search.stages=[[weights_activations,{e + 2}]]", "train.mode=weights_activations"]),
        "CP-NAS (W+A)": ("cpnas", ["search.stages=[[weights_activations,8]]"]),
    }
    rows, table_path = [], args.out / "binary_compare.json"

    def record(row: dict) -> None:
        rows.append(row)
        atomic_write_text(table_path, json.dumps({"settings": vars(args) | {"out": str(args.out)}, "rows": rows},
                                                 indent=1) + "\n")
        print(f"{row['name']:<24} {row['mode']:<20} test {row['test_acc']:.4f}  search {row['search_seconds']:.0f}s "
              f"retrain {row['train_seconds']:.0f}s  params {row['params']}  binary MACs {row['binary_macs']}",
              flush=True)

    def retrain(name: str, cfg, arch, folder: str, search_seconds: float, full_precision: bool = False,
                extra: dict | None = None) -> dict:
        result = trainer.run_train(cfg, arch, args.out / folder, full_precision=full_precision, stream=open("/dev/null", "w"))
        row = {"name": name, "mode": result["mode"], "test_acc": result["test_acc"], "search_seconds": search_seconds,
               "train_seconds": result["train_seconds"], "params": result["params"],
               "binary_macs": binary_macs(cfg, arch, result["mode"]), "genotype": result["genotype"], **(extra or {})}
        record(row)
        return row

    searched = {}
    for name, (algo, extra) in setups.items():
        cfg = load_config(CONFIGS / f"{algo}_fashion_mnist.py", common + extra)
        began = time.monotonic()
        summary = trainer.run_search(cfg, args.out / f"search_{algo}_{len(searched)}", stream=open("/dev/null", "w"))
        seconds = time.monotonic() - began
        from tasknas.core import load_arch
        from tasknas.plugins.binary.networks import arch_space

        arch = load_arch(args.out / f"search_{algo}_{len(searched)}" / "genotype.arch.json", arch_space(cfg.model))
        searched[name] = (cfg, arch, retrain(name, cfg, arch, f"train_{len(searched)}", seconds))
    for space, (cfg, _, _) in (("BATS space", searched["BATS (W+A)"]), ("DARTS space", searched["CP-NAS (W+A)"])):
        rng = random.Random(args.seed)
        accs = []
        for i in range(args.randoms):
            arch = sample(genotype_space(op_names(cfg.model), cfg.model.steps), rng)
            accs.append(retrain(f"random {i + 1} ({space})", cfg, arch, f"random_{space[:4]}_{i}", 0.0)["test_acc"])
        print(f"random ({space}): {statistics.mean(accs):.4f} ± {statistics.stdev(accs) if len(accs) > 1 else 0:.4f}")
    best = max(searched, key=lambda n: searched[n][2]["test_acc"])
    cfg, arch, row = searched[best]
    retrain(f"{best} full-precision twin", cfg, arch, "train_fp", row["search_seconds"], full_precision=True)
    plot(rows, args.out / "binary_compare.png")
    print(f"table: {table_path}")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    names = [r["name"] for r in rows]
    ax.barh(names, [100 * r["test_acc"] for r in rows], color=["tab:gray" if "random" in n else "tab:blue"
                                                             for n in names])
    ax.set_xlabel("test accuracy (%)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
