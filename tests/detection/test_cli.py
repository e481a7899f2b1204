"""The user's path through the command line: tasknas train -> search -> export on a config file."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.detection.conftest import SHAPES_CONFIG, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _tasknas(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "tasknas.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_train_search_export_from_the_command_line(shapes_root, tmp_path):
    config = tmp_path / "tiny_shapes.py"
    tiny_config(SHAPES_CONFIG, shapes_root, tmp_path / "w", iters=2).dump(str(config))
    train = _tasknas("train", str(config), "--work-dir", str(tmp_path / "w"))
    assert train.returncode == 0, train.stderr[-2000:]
    weights = tmp_path / "w" / "supernet.pth"
    assert f"supernet weights: {weights}" in train.stdout

    search = _tasknas("search", str(config), "--checkpoint", str(weights), "--work-dir", str(tmp_path / "s"),
                      "--population", "4", "--topk", "2", "--mutations", "1", "--crossovers", "1",
                      "--generations", "1", "--calib-images", "2", "--macs-max", "10")
    assert search.returncode == 0, search.stderr[-2000:]
    assert "best arch (bbox_mAP" in search.stdout and "search [" in search.stderr
    assert len(json.loads((tmp_path / "s" / "results.json").read_text())["records"]) == 4

    export = _tasknas("export", str(config), "--checkpoint", str(weights), "--arch",
                      str(tmp_path / "s" / "best.arch.json"), "--work-dir", str(tmp_path / "e"), "--no-onnx",
                      "--calib-images", "2")
    assert export.returncode == 0, export.stderr[-2000:]
    assert (tmp_path / "e" / "subnet.pth").exists() and "config: " in export.stdout

    again = _tasknas("search", str(config), "--checkpoint", str(weights), "--work-dir", str(tmp_path / "s"),
                     "--population", "4", "--topk", "2", "--mutations", "1", "--crossovers", "1",
                     "--generations", "1", "--calib-images", "2", "--macs-max", "0.000001")
    assert again.returncode == 2
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("tasknas search: error: constraint macs in [-inf, 1000] cannot be met")
