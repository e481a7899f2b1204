"""`tasknas pretrain` and `tasknas rank` through the top-level command: outputs, one-line errors."""
from pathlib import Path

from tasknas.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["model.last_channels=16", "data.dataset=generated", "data.generated_images=64", "data.image_size=16",
        "data.held_out=16", "data.batch_size=16", "data.eval_batch_size=16", "train.epochs=1", "rank.archs=3",
        "rank.scan=0", "rank.noise_archs=2", "rank.calib_images=16", "rank.bootstrap=100",
        "rank.standalone.images=16", "rank.standalone.batch_size=16"]


def test_pretrain_then_rank_from_the_command_line(tmp_path, capsys):
    config = str(ROOT / "configs" / "pretrain" / "detnas-fmnist_uniform.py")
    assert main(["pretrain", config, "--out", str(tmp_path), "--cfg-options", *TINY]) == 0
    assert "supernet weights:" in capsys.readouterr().out
    assert main(["rank", config, "--supernet", str(tmp_path / "supernet.pth"), "--out", str(tmp_path / "rank"),
                 "--cfg-options", *TINY]) == 0
    out = capsys.readouterr()
    assert "Kendall tau-b" in out.out + out.err and (tmp_path / "rank" / "report.json").is_file()
    # running again into the same folder without --resume: one line naming the way out
    assert main(["pretrain", config, "--out", str(tmp_path), "--cfg-options", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--resume" in err


def test_bad_key_and_missing_supernet_are_one_line_errors(tmp_path, capsys):
    config = str(ROOT / "configs" / "pretrain" / "detnas-fmnist_uniform.py")
    assert main(["pretrain", config, "--out", str(tmp_path), "--cfg-options", "train.epoch=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown config key 'train.epoch'" in err
    assert main(["rank", config, "--supernet", str(tmp_path / "none.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.pth" in err and "does not exist" in err
