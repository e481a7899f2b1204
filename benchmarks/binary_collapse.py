"""Why the BATS search collapses onto pooling ops: probes of the search network and a small sweep, Fashion-MNIST.

``probe``: on the search network of a config (seeded, as ``tasknas binary search`` builds it), per op of the
normal cells, the RMS of the op's output and the mean first-order gradient of the held-out loss on its
alpha (negative: the alpha step raises that op), at initialisation and after each epoch of weight-only
training. ``sweep``: full searches (the config's schedule, optionally on a smaller data budget) for several
variants x seeds; per variant the share of parameter-free ops (pools, skip) in the derived normal cell and
the mean softmax weight of the pools after each epoch. Not part of CI.

    OMP_NUM_THREADS=1 nice python benchmarks/binary_collapse.py probe
    OMP_NUM_THREADS=1 nice python benchmarks/binary_collapse.py sweep --seeds 0 1 2 --variant shipped "T=1"
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasknas.plugins.binary import trainer  # noqa: E402
from tasknas.plugins.binary.config import load_config  # noqa: E402
from tasknas.plugins.binary.data import Normalizer, batches  # noqa: E402
from tasknas.plugins.binary.ops import set_binary_mode  # noqa: E402

CONFIG = ROOT / "configs" / "binary" / "bats_fashion_mnist.py"
PARAM_FREE = ("max_pool_3x3", "avg_pool_3x3", "skip_connect")
POOLS = ("max_pool_3x3", "avg_pool_3x3")
VARIANTS = {  # name -> overrides on top of the config (and --set)
    "shipped": [],
    "no warm-up": ["search.arch_warmup_epochs=0"],
    "T=1": ["search.temperature.kind=constant"],
    "one stage W+A": ["search.stages=[[weights_activations,4]]"],
}


def _setup(cfg):
    data = trainer.load_data(cfg)
    train, held = trainer.search_splits(cfg, data.train)
    normalize = Normalizer.of(train.images)
    bs = cfg.data.batch_size
    steps = min(len(train) // bs, len(held) // bs, cfg.search.steps_per_epoch or len(train))
    driver = trainer.make_driver(cfg, data.in_channels, data.num_classes, steps, held, normalize)
    return driver, train, held, normalize, steps


def _op_stats(model, held, normalize, cfg, count: int) -> dict[str, list[float]]:
    """Per op name: [RMS of its output on the normal edges, mean d loss / d alpha over the normal edges and
    ``count`` held-out batches, the standard error of that mean over the batches]."""
    names = model.op_names
    rms = defaultdict(list)
    hooks = []
    for cell in model.cells:
        if cell.reduction:
            continue
        for edge in cell.edges:
            for name, op in zip(names, edge.candidates):
                hooks.append(op.register_forward_hook(
                    lambda m, i, o, name=name: rms[name].append(float(o.detach().pow(2).mean().sqrt()))))
    grads = []
    model.train()
    data = batches(held, cfg.data.batch_size, normalize, torch.Generator().manual_seed(123), None, True)
    for _, (x, y) in zip(range(count), data):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward(inputs=[model.alphas["normal"]])
        grads.append(model.alphas["normal"].grad.mean(0))
    for h in hooks:
        h.remove()
    model.zero_grad(set_to_none=True)
    g = torch.stack(grads)
    se = g.std(0) / len(grads) ** 0.5 if len(grads) > 1 else torch.zeros(len(names))
    return {name: [statistics.mean(rms[name]) if rms[name] else 0.0, float(g[:, k].mean()), float(se[k])]
            for k, name in enumerate(names)}


def probe(args) -> None:
    cfg = load_config(args.config, args.set)
    driver, train, held, normalize, steps = _setup(cfg)
    model = driver.model
    first, last = cfg.search.stages[0].mode, cfg.search.stages[-1].mode
    set_binary_mode(model, first)
    print(f"probe: {args.config.name} {args.set}: {steps} weight steps per epoch in mode {first}, then the same "
          f"weights in mode {last}; gradients over {args.batches} held-out batches")
    rows = {f"init {first}": _op_stats(model, held, normalize, cfg, args.batches)}
    for epoch in range(args.epochs):
        it = batches(train, cfg.data.batch_size, normalize, trainer.epoch_generator(cfg.seed, epoch, 0),
                     cfg.data.crop_padding, True)
        model.train()
        for _, (x, y) in zip(range(steps), it):
            trainer.weight_step(model, driver.w_opt, driver.weights, x, y, cfg.search.grad_clip)
        rows[f"{epoch + 1} ep {first}"] = _op_stats(model, held, normalize, cfg, args.batches)
    if last != first:
        set_binary_mode(model, last)
        rows[f"{args.epochs} ep -> {last}"] = _op_stats(model, held, normalize, cfg, args.batches)
    names = model.op_names
    print(f"{'':28s}" + "".join(f"{n.replace('group_conv', 'gc')[:11]:>12s}" for n in names))
    for label, stats in rows.items():
        print(f"{label + ' rms':28s}" + "".join(f"{stats[n][0]:12.3f}" for n in names))
        print(f"{label + ' -grad x1e3':28s}" + "".join(f"{-1e3 * stats[n][1]:12.2f}" for n in names))
        print(f"{'  (standard error x1e3)':28s}" + "".join(f"{1e3 * stats[n][2]:12.2f}" for n in names))
    if args.json:
        Path(args.json).write_text(json.dumps({"config": str(args.config), "set": args.set, "rows": rows}, indent=1))


def sweep(args) -> None:
    results = {}
    for variant in args.variant:
        for seed in args.seeds:
            cfg = load_config(args.config, [*args.set, *VARIANTS[variant], f"seed={seed}"])
            began = time.monotonic()
            with tempfile.TemporaryDirectory() as tmp:
                summary = trainer.run_search(cfg, Path(tmp) / "s", stream=open("/dev/null", "w"))
            normal = [op for op, _ in _genotype_cell(summary, "normal")]
            pools = [round(sum(h["op_mass"]["normal"][p] for p in POOLS), 3) for h in summary["history"]]
            row = {"variant": variant, "seed": seed, "param_free": sum(op in PARAM_FREE for op in normal),
                   "pools": sum(op in POOLS for op in normal), "edges": len(normal), "pool_mass": pools,
                   "final_val_acc": summary["final_val_acc"], "normal": normal,
                   "mass": [h["op_mass"]["normal"] for h in summary["history"]],
                   "genotypes": [h["genotype"] for h in summary["history"]],
                   "alpha_noise": summary["alpha_noise"], "alpha_leads": summary["alpha_leads"],
                   "undecided": sum(v < summary["alpha_noise"] for vs in summary["alpha_leads"].values()
                                    for v in vs if v is not None),
                   "seconds": round(time.monotonic() - began)}
            results.setdefault(variant, []).append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps({"set": args.set, "results": results}, indent=1))
    print(f"\n{'variant':18s}{'param-free ops':>16s}{'pools':>8s}{'undecided':>11s}   pool mass per epoch (mean)")
    for variant, rows in results.items():
        pf = statistics.mean(r["param_free"] for r in rows)
        pools = statistics.mean(r["pools"] for r in rows)
        undecided = statistics.mean(r["undecided"] for r in rows)
        mass = [round(statistics.mean(col), 3) for col in zip(*(r["pool_mass"] for r in rows))]
        print(f"{variant:18s}{pf:13.2f}/{rows[0]['edges']}{pools:8.2f}{undecided:8.2f}/16   {mass}")


def _genotype_cell(summary: dict, kind: str) -> list[tuple[str, int]]:
    arch = summary["arch"]
    steps = len([k for k in arch if k.startswith(f"{kind}.") and k.endswith(".op")]) // 2
    return [(arch[f"{kind}.node{i}.edge{e}.op"], arch[f"{kind}.node{i}.edge{e}.input"])
            for i in range(steps) for e in range(2)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=("probe", "sweep"))
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=2, help="probe: weight-only epochs")
    parser.add_argument("--batches", type=int, default=12, help="probe: held-out batches per gradient")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    (probe if args.job == "probe" else sweep)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
