"""Run Python code in a fresh interpreter where importing any OpenMMLab package fails (dependency tests)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("mmdet", "mmseg", "mmcv", "mmengine")
PRELUDE = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
sys.path.insert(0, {str(ROOT)!r})
"""
# Code run with the prelude can print this: the OpenMMLab modules that got imported anyway.
LOADED = f"sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r})"


def run_blocked(code: str) -> subprocess.CompletedProcess:
    """``code`` after the blocking prelude, in a subprocess; stdout/stderr captured as text."""
    return subprocess.run([sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, timeout=120)
