import csv
import json
import subprocess
import sys

import torch

from tasknas.core import load_arch, load_subnet, set_arch, space_of
from tasknas.core.cost import CostTable
from tasknas.demo import build_supernet, make_shapes, run


def test_generated_shapes_are_deterministic_and_balanced():
    x1, y1 = make_shapes(300, 32, seed=3)
    x2, y2 = make_shapes(300, 32, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (300, 3, 32, 32)
    assert torch.bincount(y1, minlength=6).min() >= 30


def test_demo_runs_end_to_end_and_its_exports_reload(tmp_path, capsys):
    run(tmp_path, iterations=2, generations=1, population=4, seed=1)  # an earlier run in the same folder
    summary = run(tmp_path, iterations=8, generations=2, population=4, seed=0)
    out = capsys.readouterr().out
    assert "found arch" in out and "random arch" in out
    net = build_supernet()
    net.load_state_dict(torch.load(tmp_path / "supernet.pth", weights_only=True))
    arch = load_arch(tmp_path / "best.arch.json", space_of(net))
    assert arch == summary["best"]
    table = CostTable.load(tmp_path / "cost_table.json")
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["candidates"] == len(json.loads((tmp_path / "results.json").read_text())["records"])
    budget = json.loads((tmp_path / "results.json").read_text())["budget_mmacs"]
    assert all(float(r["mmacs"]) <= budget + 1e-6 for r in rows)
    assert abs(table.macs(arch) / 1e6 - summary["best_mmacs"]) < 1e-9
    # the exported subnet holds the supernet's weights for that arch: same outputs after recalibration
    payload = load_subnet(tmp_path / "best_subnet.pth")
    assert payload["arch"] == arch.as_dict()
    subnet_sd = payload["state_dict"]
    set_arch(net, arch)
    chosen = {f"stages.{i}.{j}.": f"stages.{i}.{j}.candidates.{arch[key]}."
              for i, stage in enumerate(net.stages) for j, key in enumerate(k for k in net.block_keys
                                                                           if k.startswith(f"stage{i}."))}
    for name, tensor in subnet_sd.items():
        prefix = next((p for p in chosen if name.startswith(p)), None)
        if prefix is None:
            continue
        source = chosen[prefix] + name[len(prefix):]
        if "running_" not in source and "num_batches" not in source:
            assert torch.equal(net.state_dict()[source], tensor), name


def test_cli_lists_spaces_and_rejects_unknown_commands():
    ok = subprocess.run([sys.executable, "-m", "tasknas.cli", "spaces"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "detnas_shufflenet_small" in ok.stdout and "detnas_shufflenet_large" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "tasknas.cli", "serach"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown command 'serach'" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "tasknas.cli", "demo", "core", "--population", "2"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--population must be >= 4, got 2" in bad.stderr


def test_an_interrupted_search_says_how_to_resume(monkeypatch, capsys):
    from tasknas import cli

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "search", interrupted)
    assert cli.main(["search", "cfg.py"]) == 130
    err = capsys.readouterr().err
    assert "tasknas search: interrupted (the search state is on disk: add --resume to continue)" in err
