"""Bad input through the detection command line: one line naming the value, no traceback, no file touched —
and no load runs pickled code (a payload that would create a marker file is refused everywhere)."""
import copy
import hashlib
import os
from pathlib import Path

import pytest
import torch

from tasknas.cli import main
from tasknas.plugins.openmmlab.training import train
from tests.detection.conftest import SHAPES_CONFIG, tiny_config


class Payload:
    """Unpickling this runs `touch MARKER` (what a hostile checkpoint does)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def files(trained, tmp_path_factory):
    cfg, weights = trained
    root = tmp_path_factory.mktemp("bad")
    config = root / "tiny.py"
    cfg.dump(str(config))
    (root / "syntax.py").write_text("model = dict(type='RetinaNet'\n")
    typo = copy.deepcopy(cfg)
    typo.model.type = "RetinaNett"
    typo.dump(str(root / "typo.py"))
    (root / "empty.pth").write_bytes(b"")
    (root / "random.pth").write_bytes(os.urandom(256))
    torch.save({"state_dict": {"x": torch.zeros(1)}, "evil": Payload(root / "MARKER")}, root / "evil.pth")
    state = torch.load(weights, weights_only=True)
    name = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
    state["state_dict"][name] = torch.full_like(state["state_dict"][name], float("nan"))
    torch.save(state, root / "nan.pth")
    return root, config, weights


CASES = [  # (argv with {config}/{weights}/{root}/{work}, text the error line must hold)
    (["search", "{root}/missing.py", "--checkpoint", "{weights}", "--work-dir", "{work}"],
     "missing.py' does not exist"),
    (["search", "{root}/syntax.py", "--checkpoint", "{weights}", "--work-dir", "{work}"], "syntax.py' cannot be read"),
    (["search", "{root}/typo.py", "--checkpoint", "{weights}", "--work-dir", "{work}"], "RetinaNett"),
    (["search", "{config}", "--checkpoint", "{root}/empty.pth", "--work-dir", "{work}"], "empty.pth' cannot be read"),
    (["search", "{config}", "--checkpoint", "{root}/random.pth", "--work-dir", "{work}"], "random.pth' cannot be read"),
    (["search", "{config}", "--checkpoint", "{root}/evil.pth", "--work-dir", "{work}"], "evil.pth' cannot be read"),
    (["search", "{config}", "--checkpoint", "{root}/nan.pth", "--work-dir", "{work}"], "non-finite tensors"),
    (["search", "{config}", "--checkpoint", "{weights}", "--work-dir", "{work}", "--input-size", "0", "0"],
     "(0, 0)"),
    (["search", "{config}", "--checkpoint", "{weights}", "--work-dir", "{work}", "--calib-images", "0"],
     "at least 1 image, got 0"),
    (["search", "{config}", "--checkpoint", "{weights}", "--work-dir", "{work}", "--strategy", "annealing"],
     "'annealing'"),
    (["search", "{config}", "--checkpoint", "{weights}", "--work-dir", "{work}", "--macs-max", "1e-6"], "macs"),
    (["export", "{config}", "--checkpoint", "{root}/evil.pth", "--work-dir", "{work}", "--arch", "{root}/a.json"],
     "evil.pth' cannot be read"),
    (["export", "{config}", "--checkpoint", "{weights}", "--work-dir", "{work}", "--arch", "{root}/random.pth"],
     "random.pth"),
    (["train", "{root}/typo.py", "--work-dir", "{work}"], "RetinaNett"),
]


@pytest.mark.parametrize("argv,expected", CASES, ids=[f"{c[0][0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_gets_one_line_and_touches_no_file(files, tmp_path, capsys, argv, expected):
    root, config, weights = files
    work = tmp_path / "work"
    before = snapshot(root)
    args = [a.format(config=config, weights=weights, root=root, work=work) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines()  # (in one process, mmengine warns of its second visualizer)
             if line.strip() and "search [" not in line and "Warning" not in line and "warnings.warn" not in line]
    assert len(lines) == 1 and "error:" in lines[0] and expected in lines[0], err
    assert "Traceback" not in err
    assert snapshot(root) == before
    assert not (root / "MARKER").exists()


def test_resume_never_runs_a_pickled_checkpoint(shapes_root, tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    torch.save({"state_dict": {}, "meta": Payload(tmp_path / "MARKER")}, tmp_path / "evil.pth")
    (work / "last_checkpoint").write_text(str(tmp_path / "evil.pth"))  # it can point anywhere
    cfg = tiny_config(SHAPES_CONFIG, shapes_root, work, iters=2)
    with pytest.raises(ValueError, match=r"refused to resume from '.*evil.pth'"):
        train(cfg, work, resume=True)
    assert not (tmp_path / "MARKER").exists()


def test_resume_ignores_the_configs_load_from_and_starts_afresh_without_a_checkpoint(shapes_root, tmp_path, capsys):
    torch.save({"state_dict": {}, "meta": Payload(tmp_path / "MARKER")}, tmp_path / "evil.pth")
    cfg = tiny_config(SHAPES_CONFIG, shapes_root, tmp_path / "w", iters=1)
    cfg.load_from = str(tmp_path / "evil.pth")  # mmengine would resume from this file under resume=True
    with pytest.raises(Exception, match="evil.pth"):  # loaded as weights (safely), refused as not a checkpoint
        train(cfg, tmp_path / "w", resume=True)
    assert "nothing to resume" in capsys.readouterr().out
    assert not (tmp_path / "MARKER").exists()


def test_a_diverging_training_stops_at_the_first_non_finite_loss(shapes_root, tmp_path):
    cfg = tiny_config(SHAPES_CONFIG, shapes_root, tmp_path, iters=4)
    cfg.optim_wrapper.optimizer.lr = 1e30
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=1)
    with pytest.raises(FloatingPointError, match=r"not finite .* at iteration \d"):
        train(cfg, tmp_path)
    assert not (tmp_path / "supernet.pth").exists()
    last = Path((tmp_path / "last_checkpoint").read_text().strip()) if (tmp_path / "last_checkpoint").exists() else None
    if last is not None:  # every checkpoint kept holds finite weights
        state = torch.load(last, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
