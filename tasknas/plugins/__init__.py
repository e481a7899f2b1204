"""tasknas plugins: thin adapters that bring tasknas.core to host frameworks — the shared OpenMMLab layer,
detection (MMDetection), segmentation (MMSegmentation) — and to binary networks. Each subpackage may import
tasknas.core; the core never imports a plugin.

Importing any plugin first silences exactly one piece of third-party noise: mmengine and mmcv import
``pkg_resources`` (kept by the setuptools < 82 pin, see requirements/constraints.txt), whose import warns that
it is deprecated — a ``UserWarning`` between a user's own output lines on every run, about code the user
cannot change. Only that message is filtered; every other warning still shows.
"""
import warnings

warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated as an API", category=UserWarning)
