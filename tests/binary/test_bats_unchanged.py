"""BATS results are unchanged by the shared search machinery (partial channels, edge weights, op masks,
driver loop): the same seed gives the genotype, op weights and accuracies that the code before the refactor
(commit af9b54b) gives on this tiny run. Recorded with the pinned torch 2.14.1 on AVX2 kernels (other torch
versions, and AVX-512 kernels, round differently: on an AVX-512 machine the first validation loss reads
2.93233 instead of 2.92772); the code of af9b54b reproduces every number below bit for bit there. So the run
happens in a child process with torch's and oneDNN's kernels held at AVX2, which any x86-64 CPU with AVX2
(or AVX-512) runs."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tasknas.core import load_arch
from tasknas.plugins.binary import trainer
from tasknas.plugins.binary.config import load_config
from tasknas.plugins.binary.networks import arch_space
from tests.binary.tiny import write_tiny

ROOT = Path(__file__).resolve().parents[2]


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False

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


def record_run(folder: Path) -> dict:
    """The tiny search and the retraining of its genotype, as the values the test compares."""
    cfg = load_config(write_tiny(folder))
    with open(os.devnull, "w") as quiet:
        search = trainer.run_search(cfg, folder / "s", stream=quiet)
        arch = load_arch(folder / "s" / "genotype.arch.json", arch_space(cfg.model))
        result = trainer.run_train(cfg, arch, folder / "t", stream=quiet)
    return {"genotype": search["genotype"],
            "search": [(h["val_loss"], h["val_acc"], h["train_loss"], h["train_acc"]) for h in search["history"]],
            "first_edge": search["op_weights"]["normal"][0], "last_reduce_edge": search["op_weights"]["reduce"][-1],
            "train": [(h["train_loss"], h["train_acc"]) for h in result["history"]],
            "test": (result["test_loss"], result["test_acc"])}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not _has_avx2(),
                    reason="the record was taken on x86-64 AVX2 kernels")
def test_bats_search_and_retraining_match_the_recorded_run(tmp_path):
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = ("import json, sys; from pathlib import Path; from tests.binary.test_bats_unchanged import record_run; "
            "print(json.dumps(record_run(Path(sys.argv[1]))))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["genotype"] == GENOTYPE
    assert [v for row in got["search"] for v in row] == pytest.approx([v for row in SEARCH for v in row], rel=1e-6)
    assert got["first_edge"] == FIRST_EDGE and got["last_reduce_edge"] == LAST_REDUCE_EDGE
    assert [v for row in got["train"] for v in row] == pytest.approx([v for row in TRAIN for v in row], rel=1e-6)
    assert got["test"] == pytest.approx(TEST, rel=1e-6)
