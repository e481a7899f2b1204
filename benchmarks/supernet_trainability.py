"""How fast a weight-sharing supernet leaves chance level, next to one of its paths trained alone.

On the generated 6-class shapes classification set (64x64 RGB, ``tasknas.demo.make_shapes``), for a DetNAS
space with the SPOS classifier head (:class:`tasknas.pretrain.model.SupernetClassifier`), the same recipe
(Nesterov SGD, lr ``--lr``, cosine to 0, gradient clipping 5, batches of 64 from the same seeded order) trains

* ``fixed``: one path (drawn from the seed) — the network trained alone;
* ``uniform``: the supernet with one uniformly drawn path per step (SPOS);
* ``fair``: the supernet with FairNAS strict fairness (4 paths per step covering every option once, gradients
  summed, one step) — 4 forward/backward passes per step, so it runs ``--steps / 4`` steps: equal passes.

Every ``--every`` forward/backward passes it prints held-out accuracy: of the fixed path, or, for a supernet, the
mean over ``--paths`` random paths, each with its BN statistics recalibrated on 512 training images (what a
search would score). Chance is 1/6 = 0.167. Not part of CI; about 10 minutes for the demo space and 25 for the
20-block space on one core at the defaults.

    OMP_NUM_THREADS=1 python benchmarks/supernet_trainability.py --space detnas_shufflenet_small --out T.json
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasknas.core import fair_paths, recalibrate_bn, sample, set_arch, space_of  # noqa: E402
from tasknas.demo import make_shapes  # noqa: E402
from tasknas.pretrain.model import SupernetClassifier  # noqa: E402

HEADS = {"detnas_shufflenet_small": 1024, "detnas_shufflenet_large": 1024}  # else 256


@torch.no_grad()
def held_out(model, space, arch, x_cal, x_val, y_val, paths: int, rng: random.Random) -> float:
    """Accuracy of ``arch`` (a fixed net) or the mean over ``paths`` random paths of a supernet."""
    archs = [arch] if arch is not None else [sample(space, rng) for _ in range(paths)]
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    accs = []
    for a in archs:
        set_arch(model, a)
        recalibrate_bn(model, x_cal.split(128))
        model.eval()
        accs.append(float((model(x_val).argmax(1) == y_val).float().mean()))
        model.train()
    model.load_state_dict(saved)  # scoring leaves the training state as it was
    return sum(accs) / len(accs)


def run(mode: str, args, data) -> list[dict]:
    x, y, x_val, y_val = data
    torch.manual_seed(args.seed)
    model = SupernetClassifier(args.space, 6, 3, HEADS.get(args.space, 256))
    space = space_of(model)
    rng = random.Random(args.seed)
    fixed = sample(space, random.Random(args.seed + 100)) if mode == "fixed" else None
    per_step = 4 if mode == "fair" else 1
    steps = args.steps // per_step
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=4e-5)
    order = torch.Generator().manual_seed(args.seed)
    curve, start, loss_sum, n = [], time.monotonic(), 0.0, 0
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        index = torch.randint(0, len(x), (64,), generator=order)
        paths = [fixed] if fixed is not None else fair_paths(space, rng) if mode == "fair" else [sample(space, rng)]
        opt.zero_grad(set_to_none=True)
        for path in paths:
            set_arch(model, path)
            loss = F.cross_entropy(model(x[index]), y[index])
            loss.backward()
            loss_sum, n = loss_sum + float(loss.detach()), n + 1
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        passes = (step + 1) * per_step
        if passes % args.every == 0 or step == steps - 1:
            acc = held_out(model, space, fixed, x[:512], x_val, y_val, args.paths, random.Random(step))
            curve.append({"passes": passes, "train_loss": loss_sum / n, "held_out_acc": acc,
                          "seconds": round(time.monotonic() - start, 1)})
            loss_sum, n = 0.0, 0
            print(f"{mode:8s} passes {passes:5d}  train loss {curve[-1]['train_loss']:.3f}  held-out acc {acc:.3f}",
                  flush=True)
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="detnas_shufflenet_demo")
    parser.add_argument("--modes", nargs="+", default=["fixed", "uniform", "fair"],
                        choices=["fixed", "uniform", "fair"])
    parser.add_argument("--steps", type=int, default=800, help="forward/backward passes per mode")
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--paths", type=int, default=5, help="random paths averaged per supernet evaluation")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the curves as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    x, y = make_shapes(args.images, 64, args.seed)
    x_val, y_val = make_shapes(1000, 64, args.seed + 1)
    results = {"space": args.space, "settings": {k: v for k, v in vars(args).items() if k != "out"}, "curves": {}}
    for mode in args.modes:
        results["curves"][mode] = run(mode, args, (x, y, x_val, y_val))
    print(f"\n{args.space}: held-out accuracy after each {args.every} forward/backward passes (chance 0.167)")
    for mode, curve in results["curves"].items():
        print(f"{mode:8s} " + "  ".join(f"{c['held_out_acc']:.3f}" for c in curve))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
