"""`torchrun --nproc_per_node=2` on CPU (gloo): supernet training and a sharded search."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tasknas.plugins.openmmlab.search import search
from tests.detection.conftest import SHAPES_CONFIG, tiny_config
from tests.detection.dist_job import SEARCH

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_ranks(shapes_root: Path, work: Path, *extra: str) -> tuple[dict, dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(ROOT / "tests" / "detection" / "dist_job.py"), str(shapes_root), str(work), *extra]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tuple(json.loads((work / f"rank{i}.json").read_text()) for i in range(2))


def test_two_ranks_train_the_same_paths_and_search_like_one_process(shapes_root, tmp_path):
    r0, r1 = _run_two_ranks(shapes_root, tmp_path)
    assert r0["world"] == r1["world"] == 2
    assert len(r0["archs"]) == 3 and r0["archs"] == r1["archs"]  # the same path on both ranks at every step
    assert len({json.dumps(a, sort_keys=True) for a in r0["archs"]}) == 3
    # the sharded search equals a one-process search of the same supernet
    cfg = tiny_config(SHAPES_CONFIG, shapes_root, tmp_path / "single", iters=3)
    single = search(cfg, tmp_path / "train" / "supernet.pth", tmp_path / "single", **SEARCH)
    expected = [[r.arch.as_dict(), r.score] for r in single.records]
    assert r0["records"] == r1["records"] == expected
    assert json.loads((tmp_path / "search" / "results.json").read_text())["best"] == single.best.as_dict()


def test_two_ranks_keep_the_same_greedy_paths_and_pool(shapes_root, tmp_path):
    """GreedyNAS under torchrun: every rank scores the broadcast candidates on its own held-out batch, the losses
    are averaged, so both ranks keep (and train) the same paths and hold the same pool and the same weights."""
    r0, r1 = _run_two_ranks(shapes_root, tmp_path, "greedy")
    assert r0["world"] == r1["world"] == 2
    assert len(r0["paths"]) == 3 and all(len(paths) == 2 for paths in r0["paths"])
    assert r0["paths"] == r1["paths"]
    assert r0["pool"] == r1["pool"] and r0["pool"]["evaluated"] == 12 and len(r0["pool"]["pool"]) >= 2
    assert r0["weights"] and r0["weights"] == r1["weights"]
