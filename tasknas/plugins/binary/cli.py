"""Command line of the binary plugin: ``tasknas binary search CONFIG [--algorithm bats|bnas|cpnas]`` and
``tasknas binary train CONFIG --arch``.

Errors (a bad config key, a missing data set, an arch that does not fit the config, a damaged or refused
checkpoint, a non-finite loss) are printed as one line without a traceback, exit status 2; ``--debug`` or the
environment variable ``TASKNAS_DEBUG=1`` lets the traceback through for bug reports.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

USAGE = """usage: tasknas binary {search,train} ...

  search  cell search: BATS (2 stages, temperature), BNAS (PC-DARTS + op-space reduction) or CP-NAS
          (child-parent sampling) -> genotype.arch.json
  train   retrain the discrete network of an arch: binary, or its full-precision twin (--full-precision)"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a .py or .json config (see configs/binary/)")
    parser.add_argument("--out", type=Path, help="output folder (default: work_dirs/binary/<config name>/<job>)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set search.lr=0.01 --set data.train_subset=5000")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or TASKNAS_DEBUG=1)")


def _setup(parser: argparse.ArgumentParser, argv: list[str], job: str):
    from .config import load_config

    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    overrides = list(args.overrides)
    if getattr(args, "algorithm", None):
        overrides.append(f"search.algorithm={args.algorithm}")
    cfg = load_config(args.config, overrides)
    out = args.out or Path("work_dirs") / "binary" / Path(args.config).stem / job
    return args, cfg, out


def _search(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas binary search", description="Cell search for a binary network "
                                     "with BATS, BNAS or CP-NAS on one trainer. Writes genotype.arch.json, "
                                     "search.json and a per-epoch checkpoint.")
    _common(parser)
    parser.add_argument("--algorithm", choices=("bats", "bnas", "cpnas"),
                        help="overrides search.algorithm of the config")
    args, cfg, out = _setup(parser, argv, "search")
    from .trainer import run_search

    summary = run_search(cfg, out, resume=args.resume)
    print(f"genotype: {summary['genotype']}")
    acc = summary["final_val_acc"]
    print(f"{summary['algorithm']}: held-out accuracy {'n/a' if acc is None else f'{acc:.4f}'} after "
          f"{summary['epochs']} epochs, {summary['seconds']:.0f} s of search")
    leads = [v for values in summary.get("alpha_leads", {}).values() for v in values if v is not None]
    if leads:
        weak = sum(v < summary["alpha_noise"] for v in leads)
        print(f"alpha: {weak} of {len(leads)} genotype edges lead the runner-up op by less than the noise scale "
              f"arch_lr*sqrt(alpha steps) = {summary['alpha_noise']:.3g}"
              + (": on those the search did not separate the ops (more epochs or data)" if weak else ""))
    print(f"arch: {out / 'genotype.arch.json'}")
    return 0


def _train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas binary train", description="Retrain the discrete network of an "
                                     "arch and score it on the test split. Writes result.json, model.pth and a "
                                     "per-epoch checkpoint.")
    _common(parser)
    parser.add_argument("--arch", required=True, type=Path, help="genotype.arch.json of a search")
    parser.add_argument("--full-precision", action="store_true",
                        help="the full-precision twin: same genotype, real convs (mode 'real')")
    args, cfg, out = _setup(parser, argv, "train_fp" if "--full-precision" in argv else "train")
    from tasknas.core import load_arch

    from .networks import arch_space
    from .trainer import run_train

    arch = load_arch(args.arch, arch_space(cfg.model))
    result = run_train(cfg, arch, out, full_precision=args.full_precision, resume=args.resume)
    print(f"test accuracy {result['test_acc']:.4f} ({result['mode']}, {result['test_images']} test images, "
          f"{result['train_seconds']:.0f} s of training)")
    print(f"result: {out / 'result.json'}")
    return 0


JOBS = {"search": _search, "train": _train}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] not in JOBS:
        print(f"tasknas binary: unknown command {argv[0]!r}; expected one of {sorted(JOBS)}", file=sys.stderr)
        return 2
    debug = "--debug" in argv or bool(os.environ.get("TASKNAS_DEBUG"))
    try:
        return JOBS[argv[0]](argv[1:])
    except (ValueError, OSError) as exc:  # OSError covers FileNotFoundError / FileExistsError
        if debug:
            raise
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        print(f"tasknas binary: error: {lines[0] if lines else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ntasknas binary {argv[0]}: interrupted (the last finished epoch is on disk: run the same command "
              "with --resume to continue)", file=sys.stderr)
        return 130
