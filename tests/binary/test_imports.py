"""The binary plugin imports and builds networks with every OpenMMLab package blocked; reading a config needs
mmengine's ``Config`` only (mmcv, mmdet and mmseg stay blocked)."""
from pathlib import Path

from tests.openmmlab_blocked import LOADED, run_blocked

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "binary" / "bnas_fashion_mnist.py"
PLUGIN_CODE = f"""
import torch
import tasknas.plugins.binary.cli, tasknas.plugins.binary.trainer, tasknas.plugins.binary.spaces
from tasknas.plugins.binary.config import ModelConfig
from tasknas.plugins.binary.networks import build_search_network
net = build_search_network(ModelConfig(search_channels=4, search_layers=3, steps=2, groups=2), 'weights_activations',
                           1, 10, torch.Generator().manual_seed(0))
print({LOADED}, tuple(net(torch.zeros(1, 1, 8, 8)).shape))
sys.meta_path.pop(0)  # now let mmengine through; mmcv, mmdet and mmseg stay blocked
class BlockMost:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmcv', 'mmdet', 'mmseg'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, BlockMost())
from tasknas.plugins.binary.config import load_config
cfg = load_config({str(CONFIG)!r}, ['search.cpnas.beta=0.5'])
print(sorted({{m.split('.')[0] for m in {LOADED}}}), cfg.search.algorithm, cfg.search.cpnas.beta)
"""


def test_plugin_imports_with_the_openmmlab_packages_blocked_and_configs_need_mmengine_only():
    proc = run_blocked(PLUGIN_CODE)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[] (1, 10)", "['mmengine'] bnas 0.5"]
