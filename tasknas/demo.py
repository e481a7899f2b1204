"""The embedded demo: a one-shot DetNAS-style search on generated images, offline, in a few minutes.

1. generate a 6-class shapes data set (train / search-val / test splits, no download);
2. train a 10-block ShuffleNetV2 choice-block supernet (the DetNAS small layout 4/4/8/4 at half depth,
   2/2/4/2, and narrower) with SPOS FLOPs-binned path sampling;
3. evolutionary search under a MACs budget; every candidate has its BN statistics recalibrated on
   training images, then is scored on the search-val split;
4. export the best arch (JSON), its fixed subnet's weights, the results table and the search state;
   report the found arch next to a random arch of similar MACs on the test split.

Uses only ``tasknas.core``, torch and numpy.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .core import (
    EvolutionConfig,
    FlopsBinnedSampler,
    ProgressBar,
    build_cost_table,
    create_space,
    evolve,
    fix,
    sample_like,
    save_arch,
    save_subnet,
    score_candidate,
    set_arch,
    space_of,
)
from .core.spaces.shufflenet import ShuffleNetSupernet, arch_letters
from .core.state import atomic_write, atomic_write_text

CLASSES = ("disc", "square", "triangle", "cross", "ring", "diamond")


def make_shapes(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy ``size``×``size`` RGB images of one shape each (classes :data:`CLASSES`), normalised."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    labels = rng.integers(0, len(CLASSES), n)
    for i, label in enumerate(labels):
        r = rng.uniform(0.25, 0.42) * size
        cy, cx = rng.uniform(r, size - r, 2)
        dy, dx = (yy - cy) / r, (xx - cx) / r
        name = CLASSES[label]
        if name == "disc":
            mask = dy ** 2 + dx ** 2 <= 1
        elif name == "square":
            mask = (np.abs(dy) <= 0.8) & (np.abs(dx) <= 0.8)
        elif name == "triangle":
            mask = (dy <= 0.8) & (dy >= 2 * np.abs(dx) - 1.0)
        elif name == "cross":
            mask = ((np.abs(dy) <= 0.28) | (np.abs(dx) <= 0.28)) & (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
        elif name == "ring":
            mask = (dy ** 2 + dx ** 2 <= 1) & (dy ** 2 + dx ** 2 >= 0.4)
        else:  # diamond
            mask = np.abs(dy) + np.abs(dx) <= 1
        bg, fg = rng.uniform(0.0, 0.35, 3), rng.uniform(0.55, 1.0, 3)  # a bright shape on a dark background
        img = np.where(mask[None], fg[:, None, None], bg[:, None, None]).astype(np.float32)
        images[i] = img + rng.normal(0, 0.08, img.shape).astype(np.float32)
    images = (images - 0.5) / 0.25
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def build_supernet(num_classes: int = len(CLASSES)) -> ShuffleNetSupernet:
    """The ``detnas_shufflenet_demo`` space: the DetNAS small layout at half depth (2/2/4/2), narrower."""
    return create_space("detnas_shufflenet_demo", num_classes=num_classes)


def batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    for i in range(0, len(images), batch_size):
        yield images[i:i + batch_size], labels[i:i + batch_size]


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 250) -> float:
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches(images, labels, batch_size))
    return correct / len(labels)


def train_supernet(model, images, labels, iterations: int, sampler, rng: random.Random, batch_size: int = 64,
                   lr: float = 0.05) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 0.5 * (1 + math.cos(math.pi * it / iterations)))
    gen = torch.Generator().manual_seed(rng.randrange(2 ** 31))
    bar = ProgressBar(iterations, "train supernet")
    model.train()
    loss_avg = acc_avg = 0.0
    for it in range(iterations):
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        x, y = images[idx], labels[idx]
        set_arch(model, sampler(rng))  # one path per iteration; options off the path get no update
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_avg = 0.95 * loss_avg + 0.05 * loss.item() if it else loss.item()
        acc_avg = 0.95 * acc_avg + 0.05 * float((out.argmax(1) == y).float().mean()) if it else 0.0
        bar.update(it + 1, f"loss {loss_avg:.3f} acc {acc_avg:.2f}")


def run(out_dir: Path, iterations: int, generations: int, population: int, seed: int, image_size: int = 32) -> dict:
    start = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    say = lambda msg: print(f"[demo] {msg}", flush=True)  # noqa: E731
    say(f"generating shapes data set ({len(CLASSES)} classes, {image_size}x{image_size}) ...")
    train_x, train_y = make_shapes(3000, image_size, seed)
    val_x, val_y = make_shapes(600, image_size, seed + 1)
    test_x, test_y = make_shapes(600, image_size, seed + 2)
    model = build_supernet()
    space = space_of(model)
    table = build_cost_table(model, torch.zeros(1, 3, image_size, image_size))
    table.save(out_dir / "cost_table.json")
    lo, hi = table.range("macs")
    say(f"supernet: {len(space)} choice blocks x 4 options = {space.size():.2e} archs, "
        f"{lo / 1e6:.2f}-{hi / 1e6:.2f} MMACs per image")
    sampler = FlopsBinnedSampler(space, table.macs, num_bins=5)
    train_supernet(model, train_x, train_y, iterations, sampler, rng)
    atomic_write(out_dir / "supernet.pth", lambda tmp: torch.save(model.state_dict(), tmp))
    say(f"supernet trained ({iterations} iterations, {sampler.fallbacks} of {sampler.draws} draws fell back "
        "to uniform); saved supernet.pth")

    budget = lo + 0.6 * (hi - lo)
    calibration = [x for x, _ in batches(train_x[:512], train_y[:512], 128)]

    def score(arch) -> dict:
        acc = score_candidate(model, arch, calibration, lambda m: accuracy(m, val_x, val_y),
                              forward=lambda m, x: m(x))
        return {"score": acc}

    bar = ProgressBar(population * generations, "search")
    state = out_dir / "search_state.json"
    for stale in (state, out_dir / "search_state.records.jsonl"):  # a new demo run starts a new search
        stale.unlink(missing_ok=True)
    config = EvolutionConfig(strategy="evolution", population=population, topk=max(2, population // 4),
                             mutations=population * 2 // 5, crossovers=population * 2 // 5, generations=generations,
                             seed=seed)
    result = evolve(space, score, config, constraints=[table.constraint("macs", hi=budget)], cost=table.macs,
                    state_path=state,
                    progress=lambda e: bar.update(
                        e["scored"],
                        f"gen {e['generation'] + 1}/{e['generations']} best val acc {e['best_score']:.3f}"))
    best = result.best
    save_arch(out_dir / "best.arch.json", best)
    rows = [{"index": r.index, "generation": r.generation, "val_acc": round(r.score, 4),
             "mmacs": round(r.cost / 1e6, 4), "params": table.params(r.arch),
             "arch": json.dumps(r.arch.as_dict(), separators=(",", ":"))} for r in result.records]
    with open(out_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(out_dir / "results.json", json.dumps(
        {"best": best.as_dict(), "best_val_acc": result.best_score, "budget_mmacs": budget / 1e6,
         "records": rows, "pareto": [r.index for r in result.pareto]}, indent=1) + "\n")

    # The found arch vs a random arch of similar MACs (both recalibrated, scored on the test split).
    test_score = lambda arch: score_candidate(model, arch, calibration, lambda m: accuracy(m, test_x, test_y))  # noqa: E731
    rand = sample_like(space, table.macs, best, rng)
    best_test = test_score(best)
    set_arch(model, best)
    save_subnet(out_dir / "best_subnet.pth", fix(model, best), best,
                {"mmacs": table.macs(best) / 1e6, "test_acc": best_test, "supernet": "tasknas.demo.build_supernet"})
    summary = {"best": best, "best_val": result.best_score, "best_test": best_test,
               "best_mmacs": table.macs(best) / 1e6,
               "candidates": len(result.records), "seconds": time.monotonic() - start}
    say(f"searched {len(result.records)} candidates in {result.generations} generations "
        f"(budget {budget / 1e6:.2f} MMACs)")
    say(f"found arch  {arch_letters(best)}  {table.macs(best) / 1e6:.2f} MMACs  val acc {result.best_score:.3f}  "
        f"test acc {best_test:.3f}")
    if rand is not None:
        summary["random_test"] = test_score(rand)
        say(f"random arch {arch_letters(rand)}  {table.macs(rand) / 1e6:.2f} MMACs                 "
            f"test acc {summary['random_test']:.3f}")
    say("(arch letters per block: 3/5/7 = shufflenet k3/k5/k7, x = xception)")
    say(f"wrote {out_dir}/: best.arch.json, best_subnet.pth, results.csv, results.json, "
        f"search_state.json + .records.jsonl, cost_table.json, supernet.pth  ({summary['seconds']:.0f} s)")
    return summary


def check_search_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The demos' --iterations/--generations/--population: one error naming a bad value."""
    for name in ("iterations", "generations", "population"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.population < 4:
        parser.error(f"--population must be >= 4, got {args.population}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tasknas demo core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out/core"),
                        help="output folder (default: demo_out/core)")
    parser.add_argument("--iterations", type=int, default=1200, help="supernet training iterations (default: 1200)")
    parser.add_argument("--generations", type=int, default=6, help="evolution generations (default: 6)")
    parser.add_argument("--population", type=int, default=20, help="evolution population (default: 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    check_search_args(parser, args)
    run(args.out, args.iterations, args.generations, args.population, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
