"""BATS results are unchanged by the shared search machinery (partial channels, edge weights, op masks,
driver loop): the same seed gives the genotype, op weights and accuracies that the code before the refactor
(commit af9b54b) recorded on this tiny run."""
import pytest

from tasknas.core import load_arch
from tasknas.plugins.binary import trainer
from tasknas.plugins.binary.config import load_config
from tasknas.plugins.binary.networks import arch_space
from tests.binary.tiny import write_tiny

GENOTYPE = ("normal [n2: group_conv_5x5<-0 + dil_group_conv_5x5<-1 | n3: group_conv_3x3<-0 + dil_group_conv_5x5<-2]  "
            "reduce [n2: skip_connect<-0 + skip_connect<-1 | n3: skip_connect<-0 + skip_connect<-1]")
SEARCH = [(2.932333469390869, 0.09375, 2.170035660266876, 0.28125), (2.4884846210479736, 0.09375, 2.049178898334503,
                                                                      0.3125)]
FIRST_EDGE = {"none": 0.10646, "max_pool_3x3": 0.08986, "avg_pool_3x3": 0.10519, "skip_connect": 0.15234,
              "group_conv_3x3": 0.11794, "group_conv_5x5": 0.16585, "dil_group_conv_3x3": 0.15314,
              "dil_group_conv_5x5": 0.1092}
LAST_REDUCE_EDGE = {"none": 0.19131, "max_pool_3x3": 0.1632, "avg_pool_3x3": 0.1558, "skip_connect": 0.10299,
                    "group_conv_3x3": 0.09243, "group_conv_5x5": 0.09764, "dil_group_conv_3x3": 0.09313,
                    "dil_group_conv_5x5": 0.1035}
TRAIN = [(2.295206218957901, 0.171875), (2.182954430580139, 0.234375)]
TEST = (2.289162254333496, 0.275)


def test_bats_search_and_retraining_match_the_recorded_run(tmp_path):
    cfg = load_config(write_tiny(tmp_path))
    search = trainer.run_search(cfg, tmp_path / "s")
    assert search["genotype"] == GENOTYPE
    got = [(h["val_loss"], h["val_acc"], h["train_loss"], h["train_acc"]) for h in search["history"]]
    assert [v for row in got for v in row] == pytest.approx([v for row in SEARCH for v in row], rel=1e-6)
    assert search["op_weights"]["normal"][0] == FIRST_EDGE and search["op_weights"]["reduce"][-1] == LAST_REDUCE_EDGE
    arch = load_arch(tmp_path / "s" / "genotype.arch.json", arch_space(cfg.model))
    result = trainer.run_train(cfg, arch, tmp_path / "t")
    got = [v for h in result["history"] for v in (h["train_loss"], h["train_acc"])]
    assert got == pytest.approx([v for row in TRAIN for v in row], rel=1e-6)
    assert (result["test_loss"], result["test_acc"]) == pytest.approx(TEST, rel=1e-6)
