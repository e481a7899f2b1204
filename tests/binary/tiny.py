"""A tiny Fashion-MNIST-format data set (IDX files) and a config small enough for tests."""
import copy
import json
from pathlib import Path

import torch

from tasknas.plugins.binary.data import ImageSet, write_fashion_mnist


def stripes(n: int, seed: int, size: int = 12) -> ImageSet:
    """Noisy dark images with a bright row at the height of the label (10 classes)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.randint(0, 80, (n, 1, size, size), generator=g, dtype=torch.uint8)
    images[torch.arange(n), 0, labels + 1] = 230
    return ImageSet(images, labels)


CONFIG = {
    "data": {"dataset": "fashion_mnist", "search_subset": 64, "train_subset": 64, "batch_size": 8,
             "eval_batch_size": 32, "crop_padding": 1},
    "model": {"groups": 2, "steps": 2, "stem_multiplier": 1, "search_channels": 4, "search_layers": 3,
              "channels": 4, "layers": 3},
    "search": {"stages": [["activations", 1], ["weights_activations", 1]], "lr": 0.01, "arch_lr": 0.01},
    "train": {"epochs": 2, "lr": 0.01},
    "seed": 0,
}


def write_tiny(folder: Path, **sections) -> Path:
    """Write the IDX files and a JSON config (``CONFIG`` updated per section) into ``folder``; returns the config."""
    write_fashion_mnist(folder / "fm", stripes(96, 0), stripes(40, 1))
    values = copy.deepcopy(CONFIG)
    values["data"]["root"] = str(folder / "fm")
    for name, update in sections.items():
        if isinstance(values.get(name), dict):
            values[name].update(update)
        else:
            values[name] = update
    path = folder / "tiny.json"
    path.write_text(json.dumps(values))
    return path
