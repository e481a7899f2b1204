"""``tasknas pretrain CONFIG`` and ``tasknas rank CONFIG``: supernet pre-training and the ranking report.

Bad input raises ``ValueError`` / ``FileNotFoundError`` / ``FileExistsError`` / ``FloatingPointError``, which the
top-level command prints as one line.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _options(parser: argparse.ArgumentParser) -> None:
    from mmengine.config import DictAction

    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None, metavar="KEY=VALUE",
                        help="override config keys, e.g. train.epochs=2 sampler.type=fair rank.archs=12")


def default_out(config: str) -> Path:
    return Path("work_dirs") / "pretrain" / Path(config).stem


def pretrain_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tasknas pretrain", description="Pre-train a supernet on classification (DetNAS step 1): single-path "
        "(uniform / FLOPs-binned), FairNAS or GreedyNAS sampling, a checkpoint after every epoch. Writes "
        "OUT/supernet.pth, which loads into the detection and segmentation supernets (docs/pretrain.md). Under "
        "torchrun it runs data-parallel (gloo on CPU, NCCL on GPUs), every rank on the same paths.")
    parser.add_argument("config", help="a pre-training config (configs/pretrain/*.py)")
    parser.add_argument("--out", type=Path, help="output folder (default: work_dirs/pretrain/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/pretrain.ckpt")
    _options(parser)
    args = parser.parse_args(argv)
    from .config import load_config
    from .trainer import pretrain

    cfg = load_config(args.config, args.cfg_options)
    out = args.out or default_out(args.config)
    summary = pretrain(cfg, out, resume=args.resume)
    last = summary["history"][-1] if summary["history"] else None
    if last is not None:
        print(f"epoch {last['epoch']}: training loss {last['loss']:.3f}, accuracy {last['acc']:.3f} "
              f"({summary['path_passes']} path passes, {last['seconds']:.0f}s)")
    print(f"supernet weights: {summary['supernet']}")
    return 0


def rank_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tasknas rank", description="Ranking report of a pre-trained supernet: N archs stratified over the "
        "FLOPs range plus the supernet's top of a random scan, each scored on the supernet (with and without BN "
        "recalibration) and trained alone from scratch; Kendall tau, Spearman rho, sparse tau, precision@k, "
        "best-true-rank@k, regret, bootstrap 95%% intervals and a two-seed noise ceiling. Writes OUT/report.json "
        "and OUT/report.png.")
    parser.add_argument("config", help="the config the supernet was pre-trained with (its `rank` section sets the "
                        "report)")
    parser.add_argument("--supernet", type=Path, help="supernet.pth of `tasknas pretrain` (default: "
                        "work_dirs/pretrain/<config name>/supernet.pth)")
    parser.add_argument("--out", type=Path, help="output folder (default: the supernet's folder + /rank)")
    parser.add_argument("--cache", type=Path, help="stand-alone results file to reuse and extend (default: "
                        "OUT/standalone.jsonl); share it between reports of the same space and data")
    _options(parser)
    args = parser.parse_args(argv)
    from .config import load_config
    from .report import rank_report

    cfg = load_config(args.config, args.cfg_options)
    supernet = args.supernet or default_out(args.config) / "supernet.pth"
    out = args.out or supernet.parent / "rank"
    rank_report(cfg, supernet, out, cache=args.cache)
    print(f"report: {out / 'report.json'}, {out / 'report.png'}")
    return 0
