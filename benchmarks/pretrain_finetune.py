"""What classification pre-training (DetNAS step 1) buys the detection supernet on the shapes demo.

    python benchmarks/pretrain_finetune.py --out work_dirs/pretrain_finetune [--space small|demo] [--iterations 300]

1. pre-trains the backbone space — ``detnas_shufflenet_small`` (20 blocks, ``--space small``) or the demo's
   ``detnas_shufflenet_demo`` (10 blocks, ``--space demo``) — on a generated shapes classification set
   (``configs/pretrain/detnas-small_shapes.py`` with ``model.space`` set; budget set by ``--pretrain-epochs`` /
   ``--pretrain-images``);
2. trains the RetinaNet supernet on the COCO-format shapes detection set twice, the same iterations, data and seed:
   from scratch (``configs/detection/retinanet_detnas-{small,demo}_fpn_shapes.py``) and from the pre-trained
   supernet (the same config with the one documented line ``init_cfg=dict(type='Pretrained', checkpoint=...,
   prefix='backbone.')``); then each is searched, its best arch exported and scored on the test split (the demo
   pipeline, :func:`tasknas.plugins.openmmlab.demo.run_pipeline`);
   ``--seeds`` repeats step 2 with other detection seeds (one pre-training for all);
3. writes ``OUT/pretrain_finetune.json`` (the pre-trained supernet's held-out accuracy; per seed: loss per
   iteration, found-arch test mAP, random-arch mAP, seconds; mean ± std over seeds) and
   ``OUT/pretrain_finetune.png`` (both loss curves, mean over seeds).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402

CURVES: dict[str, list[float]] = {}
SPACES = {  # --space -> (core space, the 1x1 conv width of the pre-training head, detection config)
    "small": ("detnas_shufflenet_small", 1024, "retinanet_detnas-small_fpn_shapes.py"),
    "demo": ("detnas_shufflenet_demo", 256, "retinanet_detnas-demo_fpn_shapes.py"),
}


@HOOKS.register_module(force=True)
class LossCurveHook(Hook):
    """Records the training loss of every iteration in :data:`CURVES` under ``name``."""

    priority = "LOW"

    def __init__(self, name: str):
        self.name = name

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        CURVES.setdefault(self.name, []).append(float(outputs["loss"].detach()))


def smooth(values: list[float], window: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v - (values[i - window] if i >= window else 0.0)
        out.append(acc / min(i + 1, window))
    return out


def plot(path: Path, results: dict) -> None:
    """Both loss curves (mean over the seeds, smoothed), the found arch's test mAP in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, runs in results["runs"].items():
        curves = [r["loss"] for r in runs.values()]
        mean = [sum(values) / len(values) for values in zip(*curves)]
        found = results["summary"][name]["found_test_map"][0]
        ax.plot(range(1, len(mean) + 1), smooth(mean), label=f"{name} (found arch test mAP {found:.3f})")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"training loss (mean of 20 iterations and {len(results['seeds'])} seed(s))")
    ax.set_title(f"RetinaNet + {results['space']} supernet on the shapes set: scratch vs pre-trained "
                 f"(held-out acc. {results['pretrain_held_out_acc']['mean']:.2f})", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def held_out_accuracy(checkpoint: Path, cfg, paths: int = 20) -> dict:
    """Held-out accuracy of ``paths`` random paths of the pre-trained supernet, BN recalibrated on 500 training
    images each: did pre-training leave chance level?"""
    import random

    import torch

    from tasknas.core import recalibrate_bn, sample, set_arch, space_of
    from tasknas.pretrain.data import batches, load_splits
    from tasknas.pretrain.model import load_supernet
    from tasknas.pretrain.trainer import accuracy

    model, _ = load_supernet(checkpoint)
    splits = load_splits(cfg.data, cfg.seed)
    rng = random.Random(cfg.seed)
    space = space_of(model)
    accs = []
    for _ in range(paths):
        set_arch(model, sample(space, rng))
        recalibrate_bn(model, (x for x, _ in batches(splits.train, 250, splits.channels, 500)))
        accs.append(accuracy(model, splits.held_out, 500, splits.channels))
    return {"mean": sum(accs) / len(accs), "min": min(accs), "max": max(accs), "paths": paths,
            "torch_threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("work_dirs/pretrain_finetune"))
    parser.add_argument("--space", choices=sorted(SPACES), default="small",
                        help="the backbone space: small (20 blocks, the DetNAS space) or demo (10 blocks, the demo's)")
    parser.add_argument("--iterations", type=int, default=300, help="detection supernet training iterations (each)")
    parser.add_argument("--pretrain-epochs", type=int, default=1)
    parser.add_argument("--pretrain-images", type=int, default=8000, help="generated classification images")
    parser.add_argument("--pretrain-sampler", choices=["uniform", "flops", "fair", "greedy"], default="flops",
                        help="the pre-training sampler (fair trains 4 paths per step: 4x the passes per epoch)")
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--images", type=int, nargs=3, default=(400, 150, 150), metavar=("TRAIN", "VAL", "TEST"),
                        help="shapes detection images per split")
    parser.add_argument("--seed", type=int, default=0, help="the pre-training seed and the shapes data's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="detection seeds: each trains, searches and exports both supernets")
    args = parser.parse_args(argv)

    from tasknas.plugins.detection.demo import IMAGE_SIZE, demo_config
    from tasknas.plugins.detection.synthetic import write_shapes_coco
    from tasknas.plugins.openmmlab.config import load_config
    from tasknas.plugins.openmmlab.demo import run_pipeline
    from tasknas.pretrain.config import load_config as load_pretrain_config
    from tasknas.pretrain.trainer import SUPERNET, pretrain

    start = time.monotonic()
    out = args.out
    pre_cfg = load_pretrain_config(ROOT / "configs" / "pretrain" / "detnas-small_shapes.py",
                                   {"model.space": SPACES[args.space][0], "model.last_channels": SPACES[args.space][1],
                                    "train.epochs": args.pretrain_epochs, "sampler.type": args.pretrain_sampler,
                                    "data.generated_images": args.pretrain_images,
                                    "data.held_out": max(args.pretrain_images // 10, 64), "seed": args.seed})
    print(f"== pre-training {SPACES[args.space][0]} on {args.pretrain_images} generated shapes images, "
          f"{args.pretrain_epochs} epoch(s), {args.pretrain_sampler} sampling", flush=True)
    summary = pretrain(pre_cfg, out / "pretrain", resume=True)
    checkpoint = out / "pretrain" / SUPERNET

    data = out / "data"
    train_n, val_n, test_n = args.images
    write_shapes_coco(data, {"train": train_n, "val": val_n, "test": test_n}, IMAGE_SIZE, seed=args.seed)
    detection = ROOT / "configs" / "detection"
    results = {"space": SPACES[args.space][0], "pretrain_sampler": args.pretrain_sampler,
               "pretrain": {k: summary[k] for k in ("epochs", "steps", "path_passes", "train_images", "history")},
               "pretrain_held_out_acc": held_out_accuracy(checkpoint, pre_cfg),
               "iterations": args.iterations, "images": list(args.images), "seeds": args.seeds,
               "runs": {"scratch": {}, "pretrained": {}}}
    print(f"pre-trained supernet: held-out accuracy of 20 random paths (BN recalibrated) "
          f"{results['pretrain_held_out_acc']['mean']:.3f} (chance {1 / 6:.3f})", flush=True)
    for seed in args.seeds:
        for name in ("scratch", "pretrained"):
            cfg = demo_config(data, out / f"{name}-{seed}" / "supernet", args.iterations, seed)
            model = load_config(detection / SPACES[args.space][2]).model
            if name == "pretrained":  # the documented one line
                model.backbone.init_cfg = dict(type="Pretrained", checkpoint=str(checkpoint), prefix="backbone.")
            cfg.model = model
            for hook in cfg.custom_hooks:
                if hook["type"] == "ArchSamplerHook":
                    hook["input_size"] = (IMAGE_SIZE, IMAGE_SIZE)
                    hook["seed"] = seed
            cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type="LossCurveHook", name=f"{name}/{seed}")]
            print(f"== detection supernet from {name}, seed {seed}: {args.iterations} iterations, then search and "
                  "export", flush=True)
            t0 = time.monotonic()
            run = run_pipeline(cfg, out / f"{name}-{seed}", f"RetinaNet, {SPACES[args.space][0]} ({name})",
                               args.iterations, args.population, args.generations, seed)
            losses = CURVES[f"{name}/{seed}"]
            results["runs"][name][seed] = {
                "loss": losses, "final_loss_mean20": sum(losses[-20:]) / len(losses[-20:]),
                "found_test_map": run["best_test"], "found_val_map": run["best_val"],
                "random_test_map": run.get("random_test"), "found_gmacs": run["best_gmacs"],
                "found_arch": run["best"].as_dict(), "seconds": round(time.monotonic() - t0, 1)}
    results["seconds"] = round(time.monotonic() - start, 1)
    summary_rows = {}
    for name, runs in results["runs"].items():
        row = {}
        for key in ("final_loss_mean20", "found_test_map", "random_test_map"):
            values = [r[key] for r in runs.values() if r[key] is not None]
            row[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        summary_rows[name] = row
    results["summary"] = summary_rows
    out.mkdir(parents=True, exist_ok=True)
    (out / "pretrain_finetune.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(out / "pretrain_finetune.png", results)
    print(f"{len(args.seeds)} seed(s); mean ± std over seeds")
    for name, row in summary_rows.items():
        keys = ("final_loss_mean20", "found_test_map", "random_test_map")
        (loss, loss_sd), (found, found_sd), (rand, rand_sd) = (row[k] for k in keys)
        print(f"{name:10s} final loss (mean of last 20) {loss:.3f} ± {loss_sd:.3f}  found arch test mAP "
              f"{found:.3f} ± {found_sd:.3f}  random arch {rand:.3f} ± {rand_sd:.3f}")
    print(f"total {results['seconds']:.0f}s; {out / 'pretrain_finetune.json'}, {out / 'pretrain_finetune.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
