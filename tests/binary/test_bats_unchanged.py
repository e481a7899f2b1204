"""BATS results are unchanged by the shared search machinery (partial channels, edge weights, op masks,
driver loop): the same seed gives the genotype, op weights and accuracies that the code before the refactor
(commit af9b54b) gives on this tiny run. Recorded with the pinned torch 2.14.1 (other torch versions round
differently); the code of af9b54b reproduces every number below bit for bit in that environment."""
import pytest

from tasknas.core import load_arch
from tasknas.plugins.binary import trainer
from tasknas.plugins.binary.config import load_config
from tasknas.plugins.binary.networks import arch_space
from tests.binary.tiny import write_tiny

GENOTYPE = ("normal [n2: group_conv_5x5<-0 + dil_group_conv_5x5<-1 | n3: group_conv_3x3<-0 + dil_group_conv_5x5<-2]  "
            "reduce [n2: skip_connect<-0 + skip_connect<-1 | n3: skip_connect<-0 + skip_connect<-1]")
SEARCH = [(2.927724599838257, 0.09375, 2.170035719871521, 0.28125),
          (2.47605562210083, 0.09375, 2.0400964319705963, 0.3125)]
FIRST_EDGE = {"none": 0.10542, "max_pool_3x3": 0.08503, "avg_pool_3x3": 0.10506, "skip_connect": 0.15314,
              "group_conv_3x3": 0.11844, "group_conv_5x5": 0.16736, "dil_group_conv_3x3": 0.15817,
              "dil_group_conv_5x5": 0.10737}
LAST_REDUCE_EDGE = {"none": 0.19238, "max_pool_3x3": 0.15506, "avg_pool_3x3": 0.15253, "skip_connect": 0.10708,
                    "group_conv_3x3": 0.09179, "group_conv_5x5": 0.09905, "dil_group_conv_3x3": 0.09386,
                    "dil_group_conv_5x5": 0.10825}
TRAIN = [(2.2884934544563293, 0.125), (2.201455295085907, 0.21875)]
TEST = (2.3281339168548585, 0.1)


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
