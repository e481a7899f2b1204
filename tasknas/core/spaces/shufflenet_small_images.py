"""DetNAS / SPOS ShuffleNetV2 choice blocks sized for small images (28×28 Fashion-MNIST).

Not from the paper: the ranking report (``tasknas rank``) needs a space whose archs train from scratch in
seconds on a CPU. The choice blocks and the stride-2 stem are those of :mod:`.shufflenet` (k3 / k5 / k7 /
xception); three stages instead of four (28 → 14 after the stem → 7 → 4 → 2), with most blocks in the first
two, where the maps are still as large as the kernels and the kernel-size choices matter.

``detnas_shufflenet_fmnist``: stem 16, widths 32/64/128, repeats 4/4/2 (10 blocks, 4^10 ≈ 1.05M archs), a
256-channel last conv before the classifier; ``in_channels=1`` for grey images (3 by default, as every space).
``forward_features`` returns three stage outputs, at strides 4, 8 and 16.
"""
from __future__ import annotations

from ..registry import register_space
from .shufflenet import ShuffleNetSupernet


@register_space
def detnas_shufflenet_fmnist(num_classes: int = 0, in_channels: int = 3) -> ShuffleNetSupernet:
    """Fashion-MNIST-sized space: stem 16, widths 32/64/128, repeats 4/4/2 (10 blocks)."""
    return ShuffleNetSupernet(16, (32, 64, 128), (4, 4, 2), num_classes, in_channels, last_channels=256)
