"""Command line: ``tasknas demo | spaces | train | search | export | binary``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _spaces(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas spaces", description="List the built-in search spaces.")
    parser.parse_args(argv)
    from .core import create_space, list_spaces, space_of

    for name in list_spaces():
        space = space_of(create_space(name))
        print(f"{name:28s} {len(space):3d} choices  {space.size():.3g} archs")
    return 0


def _demo(argv: list[str]) -> int:
    if argv and argv[0] == "core":
        from .demo import main

        return main(argv[1:])
    parser = argparse.ArgumentParser(prog="tasknas demo", description="The embedded demos, offline on generated "
                                     "data: supernet training, search and export inside MMDetection (5-10 min on "
                                     "2 cores each). detnas (default): DetNAS backbone search; nasfpn / bifpn: "
                                     "neck search on a fixed backbone; joint: backbone + NAS-FPN neck in one arch. "
                                     "core: the core alone on a classification task (`tasknas demo core --help`).")
    parser.add_argument("job", nargs="?", default="detnas", choices=("detnas", "nasfpn", "bifpn", "joint", "core"))
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
    from .plugins.detection.training import train

    work = train(args.config, args.work_dir, args.resume, args.cfg_options)
    print(f"supernet weights: {work / 'supernet.pth'}")
    return 0


def _supernet_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of every command that reads a trained supernet."""
    parser.add_argument("config")
    parser.add_argument("--checkpoint", required=True, help="supernet.pth written by `tasknas train`")
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--calib-images", type=int, default=64, help="training images for BN recalibration")
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
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--mutations", type=int, default=20)
    parser.add_argument("--crossovers", type=int, default=20)
    parser.add_argument("--mutation-prob", type=float, default=0.1)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    _cfg_options(parser)
    args = parser.parse_args(argv)
    from .core import EvolutionConfig
    from .plugins.detection.search import Limits, search

    result = search(args.config, args.checkpoint, args.work_dir, resume=args.resume, options=args.cfg_options,
                    limits=Limits(args.macs_min, args.macs_max, args.params_min, args.params_max, args.latency_max),
                    backbone_only=args.backbone_only, input_size=args.input_size, calib_images=args.calib_images,
                    split=args.split,
                    evolution=EvolutionConfig.preset("detnas", population=args.population, topk=args.topk,
                                                     mutations=args.mutations, crossovers=args.crossovers,
                                                     mutation_prob=args.mutation_prob, generations=args.generations,
                                                     seed=args.seed))
    print(f"best arch (bbox mAP {result.best_score:.4f}): {args.work_dir}/best.arch.json")
    return 0


def _export(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas export", description="Export a searched subnet: arch JSON, "
                                     "fixed weights, a stock-mmdet config that trains/tests it, ONNX (backbone, "
                                     "or backbone + neck when the neck is searched).")
    _supernet_args(parser)
    parser.add_argument("--arch", required=True, help="arch JSON (best.arch.json of a search, or a published one)")
    parser.add_argument("--no-onnx", action="store_true")
    _cfg_options(parser)
    args = parser.parse_args(argv)
    from .plugins.detection.export import export

    report = export(args.config, args.checkpoint, args.arch, args.work_dir, options=args.cfg_options,
                    calib_images=args.calib_images, input_size=args.input_size, onnx=not args.no_onnx)
    for key, value in report.items():
        print(f"{key}: {value}")
    return 0


def _binary(argv: list[str]) -> int:
    from .plugins.binary.cli import main

    return main(argv)


COMMANDS = {"demo": _demo, "spaces": _spaces, "train": _train, "search": _search, "export": _export,
            "binary": _binary}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: tasknas {" + ",".join(COMMANDS) + "} ...\n\n"
              "  demo    the embedded demo (DetNAS search in MMDetection on generated data; `demo core`: the core\n"
              "          alone on a classification task)\n"
              "  spaces  list the built-in search spaces\n"
              "  train   train a supernet from an mmdet config (stock Runner, path sampling)\n"
              "  search  evolutionary search on a trained supernet\n"
              "  export  the searched subnet: weights, config, ONNX\n"
              "  binary  binary networks: BATS cell search and retraining (`tasknas binary --help`)")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"tasknas: unknown command {argv[0]!r}; expected one of {sorted(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        if os.environ.get("TASKNAS_DEBUG"):
            raise
        print(f"tasknas {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = {"search": " (the search state is on disk: add --resume to continue)",
                "train": " (add --resume to continue from the last checkpoint)"}.get(argv[0], "")
        print(f"\ntasknas {argv[0]}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
