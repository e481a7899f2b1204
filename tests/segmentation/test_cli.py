"""`tasknas train | search | export` on a segmentation config file (the task comes from default_scope mmseg)."""
import json

from mmengine.config import Config

from tasknas.cli import main
from tests.segmentation.conftest import CELLS, tiny_config


def test_train_search_export_commands_take_a_segmentation_config(seg_root, tmp_path, capsys):
    config = tmp_path / "cells_tiny.py"
    tiny_config(CELLS, seg_root, tmp_path / "train", iters=2).dump(str(config))
    assert main(["train", str(config), "--work-dir", str(tmp_path / "train")]) == 0
    weights = tmp_path / "train" / "supernet.pth"
    assert main(["search", str(config), "--checkpoint", str(weights), "--work-dir", str(tmp_path / "search"),
                 "--population", "3", "--topk", "1", "--mutations", "1", "--crossovers", "1", "--generations", "1",
                 "--calib-images", "2", "--seed", "2"]) == 0
    assert "best arch (mIoU " in capsys.readouterr().out
    results = json.loads((tmp_path / "search" / "results.json").read_text())
    assert results["settings"]["task"] == "segmentation" and len(results["records"]) == 3
    assert main(["export", str(config), "--checkpoint", str(weights), "--arch", str(tmp_path / "search" /
                 "best.arch.json"), "--work-dir", str(tmp_path / "export"), "--no-onnx"]) == 0
    exported = Config.fromfile(str(tmp_path / "export" / "cells_tiny_subnet.py"))
    assert exported.model.decode_head.arch == {k: v for k, v in results["best"].items() if k.startswith("head.")}
    assert json.loads((tmp_path / "export" / "export.json").read_text())["seed"] == 2

    broken = Config.fromfile(str(config))
    broken.train_dataloader.dataset.data_root = str(tmp_path / "nowhere")
    broken.dump(str(tmp_path / "broken.py"))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "broken.py"), "--work-dir", str(tmp_path / "b")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (earlier lines: mmengine's warnings of a 2nd Runner)
    assert last.startswith("tasknas train: error: SegShapesDataset: image folder ")
    assert "nowhere/img_dir/train' does not exist" in last
