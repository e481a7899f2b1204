"""The binary plugin needs no OpenMMLab package: it imports and builds networks with them blocked."""
from tests.openmmlab_blocked import LOADED, run_blocked

PLUGIN_CODE = f"""
import torch
import tasknas.plugins.binary.cli, tasknas.plugins.binary.trainer
from tasknas.plugins.binary.config import ModelConfig
from tasknas.plugins.binary.networks import build_search_network
net = build_search_network(ModelConfig(search_channels=4, search_layers=3, steps=2, groups=2), 'weights_activations',
                           1, 10, torch.Generator().manual_seed(0))
print({LOADED}, tuple(net(torch.zeros(1, 1, 8, 8)).shape))
"""


def test_plugin_imports_with_the_openmmlab_packages_blocked():
    proc = run_blocked(PLUGIN_CODE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "[] (1, 10)"
