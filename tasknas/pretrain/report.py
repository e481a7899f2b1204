"""The ranking report: how far to trust a supernet's ranking of archs (``tasknas rank``).

For a pre-trained supernet (a ``supernet.pth`` of ``tasknas pretrain``) the report

1. picks ``rank.archs`` distinct archs stratified over the space's FLOPs range
   (:func:`~tasknas.pretrain.selection.stratified_archs`), plus the supernet's ``rank.top`` best of a
   ``rank.scan``-arch random scan (the archs a search would pick);
2. scores each on the held-out split that pre-training never trained on, with the supernet's weights, once
   with the BN statistics as trained and once after BN recalibration on ``calib_images`` training images
   (the score a one-shot search uses);
3. trains each arch alone from scratch with one fixed short recipe (EcoNAS, Zhou et al., CVPR 2020: more data
   for fewer epochs keeps the ranking better than the reverse) and scores it on the same held-out split; a
   subset of ``noise_archs`` archs is trained again with a second seed: the τ between the two seeds is the
   noise ceiling, the best τ any supernet could show against this recipe;
4. computes Kendall τ-b (with its p-value), Spearman ρ, sparse τ, precision@k, best-true-rank@k, the regret
   of the supernet's best, and 95 % bootstrap intervals (:mod:`~tasknas.pretrain.ranking`); writes
   ``report.json`` and ``report.png`` (supernet vs stand-alone accuracy, top-k marked).

Stand-alone results are cached in a JSON-lines file keyed by arch, seed, recipe and data, so an interrupted
report resumes and reports on supernets of the same space and data (other samplers, other budgets) share them.
With about 24 archs only τ above ~0.3 is distinguishable from no correlation (two-sided 5 %; the p-value is
in the report); compare τ with the noise ceiling, not with 1.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from scipy import stats
from torch import nn

from ..core import Arch, build_cost_table, fix, recalibrate_bn, sample, set_arch, space_of
from ..core.spaces.shufflenet import arch_letters
from ..core.state import atomic_write, atomic_write_text
from .config import DataConfig, PretrainConfig, RankConfig, config_from_dict
from .data import Splits, batches, load_splits
from .model import SupernetClassifier, check_pretrained, load_supernet
from .ranking import kendall_tau, rank_statistics
from .selection import stratified_archs
from .trainer import accuracy, train_standalone

REPORT = "report.json"
PLOT = "report.png"
CACHE = "standalone.jsonl"


def _say(stream: TextIO | None, message: str) -> None:
    print(f"[rank] {message}", file=stream, flush=True)


class SupernetScorer:
    """Held-out accuracy of archs on the supernet's weights, with and without BN recalibration; the trained
    BN statistics are restored before every arch, so no score depends on the archs scored before it."""

    def __init__(self, model: nn.Module, splits: Splits, batch_size: int):
        self.model = model
        self.splits = splits
        self.batch_size = batch_size
        self.trained = {name: buf.clone() for name, buf in model.named_buffers()}

    def restore(self) -> None:
        for name, buf in self.model.named_buffers():
            buf.copy_(self.trained[name])

    def __call__(self, arch: Arch, calib_images: int | None, eval_images: int | None) -> float:
        """Accuracy of ``arch``; ``calib_images=None``: the trained BN statistics, else recalibrated."""
        self.restore()
        set_arch(self.model, arch)
        if calib_images is not None:
            images = (x for x, _ in batches(self.splits.train, self.batch_size, self.splits.channels, calib_images))
            recalibrate_bn(self.model, images, sync=False)
        acc = accuracy(self.model, self.splits.held_out, self.batch_size, self.splits.channels, eval_images)
        self.restore()
        return acc


class StandaloneCache:
    """Stand-alone accuracies in a JSON-lines file; a key is the canonical JSON of everything that decides the
    result (space, arch, seed, recipe, data). Rewritten atomically on every new entry."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            for number, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{self.path}:{number} is not a stand-alone cache line (a JSON object with "
                                     "'key'); delete the file to start afresh") from None

    @staticmethod
    def key(**fields) -> str:
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, **values) -> None:
        self.entries[key] = {"key": key, **values}
        text = "".join(json.dumps(self.entries[k], sort_keys=True) + "\n" for k in sorted(self.entries))
        atomic_write_text(self.path, text)


def standalone_accuracy(space: str, last_channels: int, arch: Arch, splits: Splits, cfg: RankConfig,
                        seed: int, batch_size: int = 500) -> float:
    """Train ``arch`` alone from scratch (``cfg.standalone``, first ``images`` training images, init and order
    seeded by ``seed``) and return its held-out accuracy on the first ``cfg.eval_images`` images."""
    recipe = cfg.standalone
    torch.manual_seed(seed)
    net = fix(SupernetClassifier(space, splits.num_classes, splits.channels, last_channels), arch)
    data = splits.train.take(torch.arange(min(recipe.images, len(splits.train))))
    train_standalone(net, data, recipe.epochs, recipe.batch_size, splits.channels, recipe.optimizer, recipe.lr,
                     recipe.weight_decay, seed, recipe.label_smoothing)
    return accuracy(net, splits.held_out, batch_size, splits.channels, cfg.eval_images)


def noise_subset(n: int, k: int) -> list[int]:
    """``k`` distinct indices spread evenly over ``range(n)`` (both ends included)."""
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)}) if k > 1 else [0]


def _data_config(payload: dict, cfg: PretrainConfig) -> tuple[DataConfig, int, bool]:
    """The data section and seed the supernet was trained with (they decide the held-out split), if recorded."""
    meta = payload.get("meta", {})
    if "data" in meta and "seed" in meta:
        recorded = config_from_dict({"data": meta["data"], "seed": int(meta["seed"])})
        return recorded.data, recorded.seed, recorded.data != cfg.data or recorded.seed != cfg.seed
    return cfg.data, cfg.seed, False


def _scan(scorer: SupernetScorer, space, chosen: Sequence[Arch], cfg: RankConfig, seed: int,
          stream: TextIO | None) -> list[tuple[float, Arch]]:
    """The supernet's scores of ``cfg.scan`` distinct random archs not in ``chosen``, best first."""
    rng = random.Random(seed + 1)
    seen = {a.to_json(indent=None) for a in chosen}
    archs: list[Arch] = []
    for _ in range(20 * cfg.scan):  # bounded: a tiny space yields fewer archs
        if len(archs) == cfg.scan:
            break
        arch = sample(space, rng)
        text = arch.to_json(indent=None)
        if text not in seen:
            seen.add(text)
            archs.append(arch)
    scored = []
    start = time.monotonic()
    for i, arch in enumerate(archs):
        scored.append((scorer(arch, cfg.scan_calib_images, cfg.scan_eval_images), arch))
        if (i + 1) % 50 == 0 or i + 1 == len(archs):
            _say(stream, f"scan {i + 1}/{len(archs)} ({time.monotonic() - start:.0f}s)")
    scored.sort(key=lambda item: (-item[0], item[1].to_json(indent=None)))
    return scored


def plot_report(path: str | os.PathLike, rows: Sequence[dict], stats_: dict, k: int, title: str) -> None:
    """Scatter of stand-alone vs supernet accuracy; the supernet's top k and the stand-alone top k marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sup = np.array([r["supernet_acc"] for r in rows]) * 100
    raw = np.array([r["supernet_acc_no_recal"] for r in rows]) * 100
    alone = np.array([r["standalone_acc"] for r in rows]) * 100
    top_sup = sorted(range(len(rows)), key=lambda i: (-sup[i], i))[:k]
    top_alone = sorted(range(len(rows)), key=lambda i: (-alone[i], i))[:k]
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    ax.scatter(raw, alone, s=14, marker="x", color="0.65", label="supernet, BN as trained")
    scan = [i for i, r in enumerate(rows) if r["source"] == "scan_top"]
    strat = [i for i, r in enumerate(rows) if r["source"] != "scan_top"]
    ax.scatter(sup[strat], alone[strat], s=28, color="tab:blue", label="supernet, BN recalibrated")
    if scan:
        ax.scatter(sup[scan], alone[scan], s=40, marker="^", color="tab:purple", label="top of the supernet scan")
    ax.scatter(sup[top_sup], alone[top_sup], s=110, facecolors="none", edgecolors="tab:red", linewidths=1.5,
               label=f"supernet top {k}")
    ax.scatter(sup[top_alone], alone[top_alone], s=170, marker="s", facecolors="none", edgecolors="tab:green",
               linewidths=1.2, label=f"stand-alone top {k}")
    ax.set_title(f"{title}\nKendall τ {_num(stats_['kendall_tau'])} {_ci(stats_['kendall_tau_ci95'])}, Spearman ρ "
                 f"{_num(stats_['spearman_rho'])}, n={stats_['n']}", fontsize=9)
    ax.set_xlabel("supernet accuracy on the held-out split (%)")
    ax.set_ylabel("stand-alone accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def rank_report(cfg: PretrainConfig, supernet: str | os.PathLike, out_dir: str | os.PathLike,
                cache: str | os.PathLike | None = None, stream: TextIO | None = None) -> dict:
    """Run the report of the module doc on ``supernet`` with ``cfg.rank``; returns what ``report.json`` holds."""
    start = time.monotonic()
    out = Path(out_dir)
    rc = cfg.rank
    check_pretrained(supernet, cfg.model.space)
    model, payload = load_supernet(supernet)
    data_cfg, seed, differs = _data_config(payload, cfg)
    if differs:
        _say(stream, "using the data settings and seed recorded in the checkpoint (they decide the held-out split)")
    splits = load_splits(data_cfg, seed)
    if splits.num_classes != model.num_classes or splits.channels != model.in_channels:
        raise ValueError(f"{supernet}: a {model.num_classes}-class {model.in_channels}-channel classifier, but the "
                         f"data give {splits.num_classes} classes and {splits.channels} channels")
    space = space_of(model)
    table = build_cost_table(model, torch.zeros(1, *splits.input_shape))
    scorer = SupernetScorer(model, splits, cfg.data.eval_batch_size)
    archs = stratified_archs(space, table.macs, rc.archs, random.Random(seed))
    sources = ["stratified"] * len(archs)
    scan = _scan(scorer, space, archs, rc, seed, stream) if rc.scan else []
    for _, arch in scan[:rc.top]:
        archs.append(arch)
        sources.append("scan_top")
    _say(stream, f"{len(archs)} archs ({rc.archs} stratified over {table.range('macs')[0] / 1e6:.2f}-"
                 f"{table.range('macs')[1] / 1e6:.2f} MMACs, {len(archs) - rc.archs} from the scan); held-out split "
                 f"{len(splits.held_out)} images")
    store = StandaloneCache(cache if cache is not None else out / CACHE)
    common = {"space": cfg.model.space, "last_channels": model.last_channels,
              "recipe": cfg.to_dict()["rank"]["standalone"], "data": dataclasses.asdict(data_cfg), "data_seed": seed,
              "eval_images": rc.eval_images}
    noise = set(noise_subset(rc.archs, rc.noise_archs))
    rows = []
    for i, (arch, source) in enumerate(zip(archs, sources)):
        row = {"arch": arch.as_dict(), "letters": arch_letters(arch), "source": source, "macs": table.macs(arch),
               "supernet_acc_no_recal": scorer(arch, None, rc.eval_images),
               "supernet_acc": scorer(arch, rc.calib_images, rc.eval_images)}
        for n, s in enumerate(rc.seeds):
            if n == 1 and i not in noise:
                continue
            key = store.key(arch=arch.as_dict(), seed=s, **common)
            hit = store.get(key)
            if hit is None:
                t0 = time.monotonic()
                acc = standalone_accuracy(cfg.model.space, model.last_channels, arch, splits, rc, s,
                                          cfg.data.eval_batch_size)
                store.put(key, accuracy=acc, seconds=round(time.monotonic() - t0, 2))
                hit = store.get(key)
            row["standalone_acc" if n == 0 else "standalone_acc_seed2"] = hit["accuracy"]
        rows.append(row)
        _say(stream, f"arch {i + 1:2d}/{len(archs)} {row['letters']} {row['macs'] / 1e6:6.2f} MMACs  supernet "
                     f"{100 * row['supernet_acc_no_recal']:5.2f}% -> recalibrated {100 * row['supernet_acc']:5.2f}%"
                     f"  stand-alone {100 * row['standalone_acc']:5.2f}%"
                     + (f" / {100 * row['standalone_acc_seed2']:5.2f}%" if "standalone_acc_seed2" in row else ""))
    sup = [r["supernet_acc"] for r in rows]
    raw = [r["supernet_acc_no_recal"] for r in rows]
    alone = [r["standalone_acc"] for r in rows]
    kw = dict(k=rc.k, resolution=rc.resolution, resamples=rc.bootstrap, seed=seed)
    statistics = {"recalibrated": rank_statistics(sup, alone, **kw),
                  "not_recalibrated": rank_statistics(raw, alone, **kw)}
    pairs = [r for r in rows if "standalone_acc_seed2" in r]
    a1, a2 = [r["standalone_acc"] for r in pairs], [r["standalone_acc_seed2"] for r in pairs]
    statistics["noise_ceiling"] = rank_statistics(a2, a1, **kw)
    statistics["noise_ceiling"]["seed_difference_pt"] = float(np.mean(np.abs(np.subtract(a1, a2))) * 100)
    tau_subset = kendall_tau([r["supernet_acc"] for r in pairs], a1)
    statistics["supernet_on_noise_subset"] = {"n": len(pairs), "kendall_tau": None if tau_subset != tau_subset
                                              else tau_subset}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        pvalue = float(stats.kendalltau(sup, alone, variant="b").pvalue)
    statistics["recalibrated"]["kendall_tau_p"] = None if pvalue != pvalue else pvalue
    report = {"space": cfg.model.space, "supernet": str(supernet), "pretrain": payload.get("meta", {}),
              "rank": cfg.to_dict()["rank"], "data": common["data"], "data_seed": seed,
              "held_out_images": len(splits.held_out) if rc.eval_images is None else min(rc.eval_images,
                                                                                          len(splits.held_out)),
              "statistics": statistics, "archs": rows,
              "scan": [{"supernet_acc": s, "arch": a.as_dict()} for s, a in scan[:max(rc.top, 10)]],
              "seconds": round(time.monotonic() - start, 1)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / REPORT, json.dumps(report, indent=1) + "\n")
    sampler = payload.get("meta", {}).get("sampler", "?")
    plot_report(out / PLOT, rows, statistics["recalibrated"], rc.k, f"{cfg.model.space}, {sampler} sampling")
    for line in summary_lines(report):
        _say(stream, line)
    return report


def _num(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None or value != value else f"{value:.{digits}f}"


def _pvalue(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2g}"


def _ci(values: Sequence[float | None]) -> str:
    return "[-]" if None in values else f"[{values[0]:.2f}, {values[1]:.2f}]"


def summary_lines(report: dict) -> list[str]:
    """The report's numbers as printed lines (an undefined correlation, of constant accuracies, as 'undefined')."""
    s = report["statistics"]
    rec, raw, noise = s["recalibrated"], s["not_recalibrated"], s["noise_ceiling"]
    k = report["rank"]["k"]
    sparse = next(key for key in rec if key.startswith("sparse_tau"))
    return [
        f"n={rec['n']} archs, held-out {report['held_out_images']} images",
        f"Kendall tau-b {_num(rec['kendall_tau'])} {_ci(rec['kendall_tau_ci95'])} (p={_pvalue(rec['kendall_tau_p'])}), "
        f"Spearman rho {_num(rec['spearman_rho'])} {_ci(rec['spearman_rho_ci95'])}, {sparse} {_num(rec[sparse])}",
        f"precision@{k} {rec[f'precision_at_{k}']:.2f}, best-true-rank@{k} {rec[f'best_true_rank_at_{k}']}, "
        f"regret {100 * rec['regret']:.2f} pt",
        f"without BN recalibration: Kendall tau-b {_num(raw['kendall_tau'])} {_ci(raw['kendall_tau_ci95'])}",
        f"noise ceiling (two stand-alone seeds, n={noise['n']}): Kendall tau-b {_num(noise['kendall_tau'])} "
        f"{_ci(noise['kendall_tau_ci95'])}, mean |difference| {noise['seed_difference_pt']:.2f} pt; supernet on the "
        f"same archs {_num(s['supernet_on_noise_subset']['kendall_tau'])}",
    ]
