"""Command line: ``tasknas demo | spaces | train | search | export | pretrain | rank | binary``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _spaces(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas spaces", description="List every searchable space of the suite: "
                                     "core supernets, backbones, necks, decode heads and binary cells, with their "
                                     "number of choices and of archs and what they plug into.")
    parser.parse_args(argv)
    from . import plugins  # noqa: F401  (filters the OpenMMLab stack's import noise)
    from .catalog import catalog

    print(f"{'plugin':13s}{'space':34s}{'choices':>8s}{'archs':>11s}  plugs into")
    for plugin, entry, why in catalog():
        if entry is None:
            print(f"{plugin:13s}(not loaded: {why})")
            continue
        space = entry.build()
        print(f"{plugin:13s}{entry.name:34s}{len(space):8d}{space.size():11.3g}  {entry.plugs_into}")
    return 0


def _demo(argv: list[str]) -> int:
    if argv and argv[0] == "core":
        from .demo import main

        return main(argv[1:])
    if argv and argv[0] == "seg":
        return _demo_seg(argv[1:])
    parser = argparse.ArgumentParser(prog="tasknas demo", description="The embedded demos, offline on generated "
                                     "data: supernet training, search and export inside MMDetection (5-10 min on "
                                     "2 cores each). detnas (default): DetNAS backbone search; nasfpn / bifpn: "
                                     "neck search on a fixed backbone; joint: backbone + NAS-FPN neck in one arch. "
                                     "seg: segmentation in MMSegmentation (`tasknas demo seg --help`). core: the "
                                     "core alone on a classification task (`tasknas demo core --help`).")
    parser.add_argument("job", nargs="?", default="detnas",
                        choices=("detnas", "nasfpn", "bifpn", "joint", "seg", "core"))
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--iterations", type=int, default=1000, help="supernet training iterations")
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from .demo import check_search_args
    from .plugins.detection.demo import run

    check_search_args(parser, args)

    run(args.out / args.job, args.iterations, args.population, args.generations, args.seed, job=args.job)
    return 0


def _demo_seg(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas demo seg", description="Segmentation search inside MMSegmentation "
                                     "on a generated mask set (train, search, export). aspp (default): the ASPP / "
                                     "DeepLabV3+ head on a fixed ResNet-18 (output stride 8); cells: decoder cells on "
                                     "a fixed ResNet-18; joint: DetNAS backbone + ASPP head in one arch; backbone: "
                                     "the backbone under mmseg's DeepLabV3+ head.")
    parser.add_argument("job", nargs="?", default="aspp", choices=("aspp", "cells", "joint", "backbone"))
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--iterations", type=int, help="supernet training iterations (default: the demo's)")
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from .demo import check_search_args
    from .plugins.segmentation.demo import run

    check_search_args(parser, args)
    extra = {} if args.iterations is None else {"iterations": args.iterations}
    run(args.out / f"seg-{args.job}", population=args.population, generations=args.generations, seed=args.seed,
        job=args.job, **extra)
    return 0


def _cfg_options(parser: argparse.ArgumentParser) -> None:
    from mmengine.config import DictAction

    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default=None, metavar="KEY=VALUE",
                        help="override config settings, e.g. train_dataloader.batch_size=4")


def _train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas train", description="Train a supernet with the stock "
                                     "mmengine Runner (one sampled path per iteration). Under torchrun it runs "
                                     "distributed (NCCL on GPUs, gloo on CPU).")
    parser.add_argument("config")
    parser.add_argument("--work-dir", help="default: work_dirs/<config name>")
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the work dir")
    _cfg_options(parser)
    args = parser.parse_args(argv)
    from .plugins.openmmlab.training import train

    work = train(args.config, args.work_dir, args.resume, args.cfg_options)
    print(f"supernet weights: {work / 'supernet.pth'}")
    return 0


def _supernet_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of every command that reads a trained supernet."""
    parser.add_argument("config")
    parser.add_argument("--checkpoint", required=True, help="supernet.pth written by `tasknas train`")
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--calib-images", type=int, help="training images for BN recalibration (search default: 64; "
                        "export default: what the search recorded in results.json beside --arch)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="input size of the cost table / ONNX model (default: the config's test Resize)")


def _search(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas search", description="Evolutionary architecture search on a "
                                     "trained supernet (DetNAS defaults), scored with the config's evaluator.")
    _supernet_args(parser)
    parser.add_argument("--resume", action="store_true", help="continue the search state in the work dir")
    parser.add_argument("--split", default="val", choices=("val", "test", "heldout"),
                        help="the split to score on: the config's val/test split, or the held-out part of its "
                             "train set (train dataset wrapped in HeldOutSplit, as DetNAS)")
    parser.add_argument("--macs-min", type=float, help="GMACs lower bound")
    parser.add_argument("--macs-max", type=float, help="GMACs upper bound")
    parser.add_argument("--params-min", type=float, help="M params lower bound")
    parser.add_argument("--params-max", type=float, help="M params upper bound")
    parser.add_argument("--latency-max", type=float,
                        help="ms upper bound at batch 1, from a latency table measured once on this device")
    parser.add_argument("--backbone-only", action="store_true",
                        help="constraints on the backbone's cost alone (to compare with papers)")
    parser.add_argument("--preset", choices=("spos", "detnas"),
                        help="a paper's evolution settings: spos = population 50, top 10, 25 mutations, 25 "
                             "crossovers, 20 generations; detnas = 50 / 10 / 20 / 20 and 10 random. Default: detnas, "
                             "or with --budget and no preset, settings planned around the budget")
    parser.add_argument("--budget", type=int, help="the number of distinct archs to score (never exceeded)")
    parser.add_argument("--strategy", help="search strategy: predictor, regularized, evolution or random "
                        "(docs/search.md); default: evolution with a preset, predictor-guided evolution with --budget "
                        "and no preset")
    parser.add_argument("--on-nonfinite", choices=("raise", "skip"),
                        help="a candidate whose score is NaN/inf: stop with an error naming it (raise, default) or "
                             "rank it last (skip)")
    for flag, kind in (("population", int), ("topk", int), ("mutations", int), ("crossovers", int),
                       ("mutation-prob", float), ("generations", int)):
        parser.add_argument(f"--{flag}", type=kind, help="overrides the preset's value")
    parser.add_argument("--seed", type=int, default=0, help="seed of the search and of the calibration images")
    _cfg_options(parser)
    args = parser.parse_args(argv)
    from .core import EvolutionConfig
    from .plugins.openmmlab import task_of
    from .plugins.openmmlab.config import load_config
    from .plugins.openmmlab.search import Limits, search

    given = {k: getattr(args, k) for k in ("budget", "strategy", "population", "topk", "mutations", "crossovers",
                                           "mutation_prob", "generations", "seed", "on_nonfinite")
             if getattr(args, k) is not None}
    preset = args.preset or (None if args.budget is not None else "detnas")
    evolution = EvolutionConfig.preset(preset, **given) if preset else EvolutionConfig(**given)
    result = search(args.config, args.checkpoint, args.work_dir, resume=args.resume, options=args.cfg_options,
                    limits=Limits(args.macs_min, args.macs_max, args.params_min, args.params_max, args.latency_max),
                    backbone_only=args.backbone_only, input_size=args.input_size,
                    calib_images=64 if args.calib_images is None else args.calib_images, split=args.split,
                    evolution=evolution)
    metric = task_of(load_config(args.config, args.cfg_options)).metric_key
    print(f"best arch ({metric} {result.best_score:.4f}): {args.work_dir}/best.arch.json")
    return 0


def _export(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas export", description="Export a searched subnet: arch JSON, "
                                     "fixed weights (BN recalibrated on the images the search used), a stock "
                                     "config that trains/tests it, ONNX.")
    _supernet_args(parser)
    parser.add_argument("--arch", required=True, help="arch JSON (best.arch.json of a search, or a published one)")
    parser.add_argument("--seed", type=int, help="seed of the calibration images (default: the search's)")
    parser.add_argument("--no-onnx", action="store_true")
    _cfg_options(parser)
    args = parser.parse_args(argv)
    from .plugins.openmmlab.export import export

    report = export(args.config, args.checkpoint, args.arch, args.work_dir, options=args.cfg_options,
                    calib_images=args.calib_images, input_size=args.input_size, onnx=not args.no_onnx,
                    seed=args.seed)
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


def _binary(argv: list[str]) -> int:
    from .plugins.binary.cli import main

    return main(argv)


def _pretrain(argv: list[str]) -> int:
    from .pretrain.cli import pretrain_main

    return pretrain_main(argv)


def _rank(argv: list[str]) -> int:
    from .pretrain.cli import rank_main

    return rank_main(argv)


COMMANDS = {"demo": _demo, "spaces": _spaces, "train": _train, "search": _search, "export": _export,
            "pretrain": _pretrain, "rank": _rank, "binary": _binary}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("TASKNAS_DEBUG"))
    if argv and argv[0] == "--debug":  # `tasknas --debug CMD ...`: tracebacks for bug reports
        argv, debug = argv[1:], True
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: tasknas [--debug] {" + ",".join(COMMANDS) + "} ...\n\n"
              "  demo    the embedded demos (DetNAS search in MMDetection on generated data; `demo seg`: segmentation\n"
              "          in MMSegmentation; `demo core`: the core alone on a classification task)\n"
              "  spaces  list every searchable space: core supernets, backbones, necks, heads, binary cells\n"
              "  train   train a supernet from an mmdet/mmseg config (stock Runner, path sampling)\n"
              "  search  architecture search on a trained supernet\n"
              "  export  the searched subnet: weights, config, ONNX\n"
              "  pretrain  supernet pre-training on classification (DetNAS step 1), loads into the detection and\n"
              "          segmentation supernets\n"
              "  rank    how well a trained supernet ranks archs: correlation with stand-alone training\n"
              "  binary  binary networks: BATS / BNAS / CP-NAS cell search and retraining (`tasknas binary --help`)\n\n"
              "Errors are one line; --debug (or TASKNAS_DEBUG=1) shows the traceback.")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"tasknas: unknown command {argv[0]!r}; expected one of {sorted(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except KeyboardInterrupt:
        hint = {"search": " (the search state is on disk: add --resume to continue)",
                "train": " (add --resume to continue from the last checkpoint)"}.get(argv[0], "")
        print(f"\ntasknas {argv[0]}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (one line for the user; --debug shows the traceback)
        if debug:
            raise
        if isinstance(exc, (ValueError, FileNotFoundError, FileExistsError, FloatingPointError)):
            print(f"tasknas {argv[0]}: error: {exc}", file=sys.stderr)
        else:
            print(f"tasknas {argv[0]}: error: {type(exc).__name__}: {exc} (run `tasknas --debug {argv[0]} ...` for "
                  "the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
