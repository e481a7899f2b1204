"""Candidate evaluation vs its bare forward passes (goal: ratio <= 1.05).

A is one candidate evaluation as the search does it (``score_candidate``), on the supernet itself (no deep
copy): ``set_arch``, ``recalibrate_bn`` over N calibration batches (BN in train mode, no grad), then
eval-mode forwards without grad over M validation batches, computing top-1 accuracy. B is the same model
running the same passes bare: train-mode no-grad forwards over the calibration batches and eval-mode no-grad forwards
over the validation batches with the same accuracy computation, with no recalibration bookkeeping.
Each round draws a fresh random arch; A and B of a round run that same arch.

The model is the reduced ShuffleNet supernet of ``bench_train_step.py`` (stem 16, widths 32/64/128/256,
repeats 4/4/8/4, 10 classes).
"""
from __future__ import annotations

import argparse
import random

import torch
from _timing import add_process_arguments, interleave, measure_in_processes, verdict

from tasknas.core import choices_of, sample, score_candidate, space_of
from tasknas.core.spaces.shufflenet import ShuffleNetSupernet

GOAL = 1.05


@torch.no_grad()
def accuracy(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    correct = total = 0
    for images, labels in batches:
        correct += int((model(images).argmax(1) == labels).sum())
        total += len(labels)
    return correct / total


def measure(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = random.Random(0)
    model = ShuffleNetSupernet(16, (32, 64, 128, 256), (4, 4, 8, 4), num_classes=10)
    space = space_of(model)
    choices = list(choices_of(model))

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(args.batch, 3, args.size, args.size), torch.randint(0, 10, (args.batch,))

    calibration = [batch()[0] for _ in range(args.calib_batches)]
    validation = [batch() for _ in range(args.val_batches)]
    archs = [sample(space, rng) for _ in range(args.rounds + 1)]  # + 1 for the warm-up round
    it_a, it_b = iter(archs), iter(archs)

    def evaluate_candidate() -> float:
        return score_candidate(model, next(it_a), calibration, lambda m: accuracy(m, validation))

    def bare_passes() -> float:
        chosen = next(it_b).as_dict()
        for choice in choices:  # the least possible work to run the same arch
            choice.active = chosen[choice.key]
        model.train()
        with torch.no_grad():
            for images in calibration:
                model(images)
        return accuracy(model, validation)

    t = interleave(evaluate_candidate, bare_passes, args.rounds, warmup=1)
    return {"ratio": t.ratio(), "candidate_ms": t.median_a() * 1e3, "bare_ms": t.median_b() * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="timed candidates of A and of B (default 8)")
    parser.add_argument("--calib-batches", type=int, default=4, help="calibration batches N (default 4)")
    parser.add_argument("--val-batches", type=int, default=4, help="validation batches M (default 4)")
    parser.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--size", type=int, default=64, help="input height and width (default 64)")
    add_process_arguments(parser)
    args = parser.parse_args()
    r = measure_in_processes(args, measure)
    print(f"candidate evaluation / bare forward passes = {r['ratio']:.3f}   goal <= {GOAL}  "
          f"({verdict(r['ratio'], GOAL)})")
    print(f"  context: candidate {r['candidate_ms']:.1f} ms, bare passes {r['bare_ms']:.1f} ms "
          f"(N={args.calib_batches} calibration + M={args.val_batches} validation batches of {args.batch} at "
          f"{args.size}x{args.size}, 1 thread)")


if __name__ == "__main__":
    main()
