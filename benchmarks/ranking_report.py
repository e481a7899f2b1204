"""Which path sampler ranks archs best? Pre-train one supernet per sampler on the same data and budget, run the
ranking report on each (one shared stand-alone cache), print the table.

    python benchmarks/ranking_report.py --out work_dirs/ranking                       # the configs' budgets
    python benchmarks/ranking_report.py --out work_dirs/ranking --samplers uniform fair \\
        --cfg-options data.train_subset=20000 rank.eval_images=3000                   # a smaller budget

Each sampler uses ``configs/pretrain/detnas-fmnist_<sampler>.py`` (their epochs give about the same number of
training path passes: FairNAS trains 4 paths a step, so it gets a quarter of uniform's epochs), plus the same
``--cfg-options``. For one supernet, ``tasknas rank CONFIG`` is the user command; this script is that report
repeated over samplers, resumable (a finished sampler is read back, an interrupted pre-training resumes).
Writes ``OUT/<sampler>/{supernet.pth,rank/report.json,rank/report.png}``, ``OUT/samplers.json`` and
``OUT/samplers.md`` (the table). With about 24 archs only τ above ~0.3 is distinguishable from no
correlation; read τ against the noise ceiling (two stand-alone seeds on the same archs).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasknas.core.state import atomic_write_text  # noqa: E402
from tasknas.pretrain.config import load_config  # noqa: E402
from tasknas.pretrain.report import CACHE, REPORT, rank_report  # noqa: E402
from tasknas.pretrain.trainer import SUPERNET, pretrain  # noqa: E402

SAMPLERS = ("uniform", "flops", "fair", "greedy")


def _ci(values) -> str:
    return "–" if None in values else f"[{values[0]:.2f}, {values[1]:.2f}]"


def table(rows: list[dict]) -> str:
    k = rows[0]["report"]["rank"]["k"] if rows else 5
    lines = [f"| sampler | epochs | path passes | pre-train s | τ-b [95 % CI] | p | ρ | sparse τ | P@{k} | "
             f"best-true-rank@{k} | regret (pt) | τ-b, BN as trained | noise ceiling τ (n) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        s = row["report"]["statistics"]
        rec, raw, noise = s["recalibrated"], s["not_recalibrated"], s["noise_ceiling"]
        sparse = next(key for key in rec if key.startswith("sparse_tau"))
        pre = row["pretrain"]
        lines.append(
            f"| {row['sampler']} | {pre['epochs']} | {pre['path_passes']} | {pre['history'][-1]['seconds']:.0f} | "
            f"{rec['kendall_tau']:.2f} {_ci(rec['kendall_tau_ci95'])} | {rec['kendall_tau_p']:.2g} | "
            f"{rec['spearman_rho']:.2f} | {rec[sparse]:.2f} | {rec[f'precision_at_{k}']:.2f} | "
            f"{rec[f'best_true_rank_at_{k}']} | {100 * rec['regret']:.2f} | {raw['kendall_tau']:.2f} | "
            f"{noise['kendall_tau']:.2f} ({noise['n']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("work_dirs/ranking"))
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--configs", type=Path, default=ROOT / "configs" / "pretrain")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, metavar="KEY=VALUE",
                        help="applied to every sampler's config")
    args = parser.parse_args(argv)
    rows = []
    start = time.monotonic()
    for sampler in args.samplers:
        cfg = load_config(args.configs / f"detnas-fmnist_{sampler}.py", args.cfg_options)
        out = args.out / sampler
        t0 = time.monotonic()
        print(f"== {sampler}: pre-training ({cfg.train.epochs} epochs; a finished run is read back)", flush=True)
        summary = pretrain(cfg, out, resume=True)  # continues an interrupted run; nothing to do for a finished one
        report_path = out / "rank" / REPORT
        if report_path.is_file():
            report = json.loads(report_path.read_text())
        else:
            print(f"== {sampler}: ranking report", flush=True)
            report = rank_report(cfg, out / SUPERNET, out / "rank", cache=args.out / CACHE)
        rows.append({"sampler": sampler, "pretrain": summary, "report": report,
                     "seconds": round(time.monotonic() - t0, 1)})
        atomic_write_text(args.out / "samplers.json", json.dumps(
            [{"sampler": r["sampler"], "path_passes": r["pretrain"]["path_passes"], "epochs": r["pretrain"]["epochs"],
              "statistics": r["report"]["statistics"], "seconds": r["seconds"]} for r in rows], indent=1) + "\n")
        atomic_write_text(args.out / "samplers.md", table(rows) + "\n")
    print(table(rows))
    print(f"total {time.monotonic() - start:.0f}s (this run; finished samplers read back)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
