"""The ranking report end to end on a tiny generated set: every measure, the JSON, the plot, the cache."""
import json

import pytest
import torch
from scipy import stats

from tasknas.pretrain.report import CACHE, PLOT, REPORT, SupernetScorer, noise_subset, rank_report
from tasknas.pretrain.trainer import SUPERNET, pretrain
from tests.pretrain.tiny import tiny_config


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre")
    cfg = tiny_config(train={"epochs": 1})
    pretrain(cfg, out)
    return cfg, out / SUPERNET


def test_report_runs_end_to_end_and_reuses_its_stand_alone_results(supernet, tmp_path):
    cfg, path = supernet
    report = rank_report(cfg, path, tmp_path)
    rows = report["archs"]
    assert len(rows) == 5 and [r["source"] for r in rows] == ["stratified"] * 4 + ["scan_top"]
    assert len({json.dumps(r["arch"], sort_keys=True) for r in rows}) == 5
    assert [r["macs"] for r in rows[:4]] == sorted(r["macs"] for r in rows[:4])
    assert sum("standalone_acc_seed2" in r for r in rows) == 2  # noise_archs
    s = report["statistics"]["recalibrated"]
    sup, alone = [r["supernet_acc"] for r in rows], [r["standalone_acc"] for r in rows]
    tau = stats.kendalltau(sup, alone).statistic
    assert s["n"] == 5 and (s["kendall_tau"] == pytest.approx(tau) or (s["kendall_tau"] is None and tau != tau))
    assert set(report["statistics"]) == {"recalibrated", "not_recalibrated", "noise_ceiling",
                                         "supernet_on_noise_subset"}
    assert report["statistics"]["noise_ceiling"]["n"] == 2
    assert report["held_out_images"] == 32
    assert json.loads((tmp_path / REPORT).read_text())["archs"] == rows
    assert (tmp_path / PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / CACHE).read_text().splitlines()) == 7  # 5 archs + 2 second-seed runs
    # a second report with the same cache trains nothing and gives the same numbers
    before = (tmp_path / CACHE).read_text()
    again = rank_report(cfg, path, tmp_path / "again", cache=tmp_path / CACHE)
    assert (tmp_path / CACHE).read_text() == before
    assert again["archs"] == rows and again["statistics"] == report["statistics"]


def test_supernet_scores_do_not_depend_on_the_archs_scored_before(supernet):
    import random

    from tasknas.core import sample, space_of
    from tasknas.pretrain.data import load_splits
    from tasknas.pretrain.model import load_supernet

    cfg, path = supernet
    model, _ = load_supernet(path)
    splits = load_splits(cfg.data, cfg.seed)
    scorer = SupernetScorer(model, splits, 32)
    a, b = (sample(space_of(model), random.Random(i)) for i in (1, 2))
    first = (scorer(a, None, None), scorer(a, 32, None))
    scorer(b, 32, None)
    assert (scorer(a, None, None), scorer(a, 32, None)) == first
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    scorer(b, 32, None)
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_noise_subset_spreads_over_the_range():
    assert noise_subset(24, 8) == [0, 3, 7, 10, 13, 16, 20, 23]
    assert noise_subset(5, 5) == [0, 1, 2, 3, 4]


def test_report_refuses_a_checkpoint_of_another_space(supernet, tmp_path):
    cfg, path = supernet
    other = tiny_config(model={"space": "detnas_shufflenet_demo", "last_channels": 32})
    with pytest.raises(ValueError, match="space 'detnas_shufflenet_fmnist', but the backbone builds space "
                                         "'detnas_shufflenet_demo'"):
        rank_report(other, path, tmp_path)
