"""The binary plugin needs no OpenMMLab package: it imports and builds networks with them blocked."""
import subprocess
import sys
from pathlib import Path

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'mmseg', 'mmcv', 'mmengine'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {root!r})
import torch
import tasknas.plugins.binary.cli, tasknas.plugins.binary.trainer
from tasknas.plugins.binary.config import ModelConfig
from tasknas.plugins.binary.networks import build_search_network
net = build_search_network(ModelConfig(search_channels=4, search_layers=3, steps=2, groups=2), 'weights_activations',
                           1, 10, torch.Generator().manual_seed(0))
mm = sorted(m for m in sys.modules if m.split('.')[0] in ('mmdet', 'mmseg', 'mmcv', 'mmengine'))
print(mm, tuple(net(torch.zeros(1, 1, 8, 8)).shape))
"""


def test_plugin_imports_with_the_openmmlab_packages_blocked():
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", BLOCKER.format(root=root)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "[] (1, 10)"
