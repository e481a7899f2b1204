"""Tiny supernets shared by the core tests."""
import torch
from torch import nn

from tasknas.core import Choice
from tasknas.core.spaces.shufflenet import ShuffleNetSupernet


def tiny_shufflenet(num_classes: int = 5) -> ShuffleNetSupernet:
    torch.manual_seed(0)
    return ShuffleNetSupernet(stem_channels=8, widths=(16, 32), repeats=(2, 2), num_classes=num_classes,
                              last_channels=16)


class TwoPath(nn.Module):
    """conv -> choice(conv3 / conv5 / identity-ish) -> BN -> choice(linear heads)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = Choice("body", {"c3": nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)),
                                    "c5": nn.Sequential(nn.Conv2d(4, 4, 5, padding=2), nn.BatchNorm2d(4))})
        self.head = Choice("head", {"a": nn.Linear(4, 2), "b": nn.Linear(4, 2)})

    def forward(self, x):
        x = self.body(self.stem(x))
        return self.head(x.mean((2, 3)))
