"""Classification data for supernet pre-training and the ranking report.

* ``fashion_mnist``: Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017), read by the binary plugin's reader
  (:func:`tasknas.plugins.binary.data.load_fashion_mnist`: ``torchvision.datasets.FashionMNIST`` over the IDX
  files of the Debian package ``dataset-fashion-mnist``, the cache ``scripts/fetch_fashion_mnist.sh`` fills, or
  ``data.root``; nothing is downloaded), resized to ``image_size`` if set.
* ``image_folder``: an ImageNet-style folder ``<root>/train/<class>/*.jpg`` (and ``<root>/val/<class>/*`` if
  present), read lazily by ``torchvision.datasets.ImageFolder``, resized and centre-cropped to ``image_size``.
* ``generated``: the core demo's shapes (:func:`tasknas.demo.make_shapes`: 6 classes of noisy RGB shapes).

Images are held as uint8 ``(N, C, H, W)`` (in memory, or loaded per batch for a folder) and normalised per
batch with the ImageNet mean and std that mmdet's and mmseg's data preprocessors use, so a pre-trained stem
sees the same input statistics after transfer. The training images are split with a seeded permutation: the
first ``held_out`` are the held-out split (never trained on; the ranking report scores on it), the next
``greedy_images`` (GreedyNAS only) give the sampler's held-out batches, the rest are trained on. Augmentation
(zero-padded random crops, horizontal flips) draws from an explicit ``torch.Generator``.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Images:
    """Labelled images: uint8 ``(N, C, H, W)`` in memory, or a lazy dataset giving uint8 ``(C, H, W)`` tensors."""

    def __init__(self, labels: torch.Tensor, images: torch.Tensor | None = None, dataset=None,
                 index: torch.Tensor | None = None):
        if (images is None) == (dataset is None):
            raise ValueError("Images needs exactly one of images (a tensor) and dataset (lazy)")
        if images is not None and (images.dtype != torch.uint8 or images.dim() != 4 or len(images) != len(labels)):
            raise ValueError(f"images must be uint8 (N, C, H, W) with one label each, got {images.dtype} "
                             f"{tuple(images.shape)} and {len(labels)} labels")
        self.labels = torch.as_tensor(labels).long()
        self.images = images
        self.dataset = dataset
        self.index = index if index is not None else torch.arange(len(labels))  # rows of the lazy dataset

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor) -> Images:
        index = torch.as_tensor(index, dtype=torch.long)
        if self.images is not None:
            return Images(self.labels[index], images=self.images[index])
        return Images(self.labels[index], dataset=self.dataset, index=self.index[index])

    def load(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images and labels of rows ``index``."""
        index = torch.as_tensor(index, dtype=torch.long)
        if self.images is not None:
            return self.images[index], self.labels[index]
        return torch.stack([self.dataset[int(i)][0] for i in self.index[index]]), self.labels[index]


@dataclass(frozen=True)
class Splits:
    train: Images
    held_out: Images
    greedy: Images | None
    test: Images | None
    num_classes: int
    channels: int
    image_size: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)


def normalize(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 → float normalised with the ImageNet mean/std (their averages for grey); grey images repeated to
    ``channels``."""
    if images.shape[1] != channels and images.shape[1] != 1:
        raise ValueError(f"cannot turn {images.shape[1]}-channel images into {channels} channels")
    x = images.float() / 255.0
    if channels == 1:
        mean, std = [sum(IMAGENET_MEAN) / 3], [sum(IMAGENET_STD) / 3]
    else:
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        x = x.expand(-1, 3, -1, -1)
    mean_t = torch.tensor(mean).view(1, -1, 1, 1)
    std_t = torch.tensor(std).view(1, -1, 1, 1)
    return ((x - mean_t) / std_t).contiguous()


def augment(images: torch.Tensor, generator: torch.Generator, crop_padding: int | None, flip: bool) -> torch.Tensor:
    """Random crops of zero-padded uint8 images and horizontal flips, drawn from ``generator``."""
    n, _, h, w = images.shape
    if crop_padding:
        p = crop_padding
        padded = F.pad(images, (p, p, p, p))
        offsets = torch.randint(0, 2 * p + 1, (n, 2), generator=generator)
        images = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])
    if flip:
        mask = torch.rand(n, generator=generator) < 0.5
        images = torch.where(mask[:, None, None, None], images.flip(3), images)
    return images


def batches(data: Images, batch_size: int, channels: int, limit: int | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised batches of the first ``limit`` images (all if None), in order."""
    n = len(data) if limit is None else min(limit, len(data))
    for start in range(0, n, batch_size):
        x, y = data.load(torch.arange(start, min(start + batch_size, n)))
        yield normalize(x, channels), y


def _resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8)


def _fashion_mnist(cfg: DataConfig) -> tuple[Images, Images, int]:
    from ..plugins.binary.data import load_fashion_mnist

    data = load_fashion_mnist(cfg.root)
    return (Images(data.train.labels, images=_resize(data.train.images, cfg.image_size)),
            Images(data.test.labels, images=_resize(data.test.images, cfg.image_size)), data.num_classes)


def _image_folder(cfg: DataConfig) -> tuple[Images, Images | None, int]:
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    if cfg.root is None or not (Path(cfg.root) / "train").is_dir():
        raise FileNotFoundError(f"data.root {cfg.root!r} must be a folder holding train/<class>/<images>")
    if cfg.image_size is None:
        raise ValueError("data.image_size must be set for dataset 'image_folder' (images are resized to one size)")
    size = cfg.image_size
    steps = [transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()]
    steps.insert(0, transforms.Grayscale(1) if cfg.channels == 1 else transforms.Lambda(lambda im: im.convert("RGB")))
    tf = transforms.Compose(steps)
    train = ImageFolder(str(Path(cfg.root) / "train"), transform=tf)
    test = None
    if (Path(cfg.root) / "val").is_dir():
        val = ImageFolder(str(Path(cfg.root) / "val"), transform=tf)
        if val.classes != train.classes:
            raise ValueError(f"{cfg.root}/val has classes {val.classes}, but train has {train.classes}")
        test = Images(torch.tensor(val.targets), dataset=val)
    return Images(torch.tensor(train.targets), dataset=train), test, len(train.classes)


def _generated(cfg: DataConfig, seed: int) -> tuple[Images, Images, int]:
    from ..demo import CLASSES, make_shapes

    size = cfg.image_size or 32
    out = []
    for n, s in ((cfg.generated_images, seed), (max(cfg.generated_images // 5, 1), seed + 1)):
        x, y = make_shapes(n, size, s)
        u8 = ((x * 0.25 + 0.5) * 255).round().clamp(0, 255).to(torch.uint8)
        if cfg.channels == 1:
            u8 = u8.float().mean(1, keepdim=True).round().to(torch.uint8)
        out.append(Images(y, images=u8))
    return out[0], out[1], len(CLASSES)


def split_permutation(n: int, seed: int) -> torch.Tensor:
    """The seeded permutation that splits the training images (the same in every process)."""
    state = np.random.SeedSequence([seed, 7919]).generate_state(1, dtype=np.uint64)[0]
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(state) >> 1))


def load_splits(cfg: DataConfig, seed: int, greedy_images: int = 0) -> Splits:
    """The configured data split into train / held-out / GreedyNAS batches / test (see the module doc)."""
    if cfg.dataset == "fashion_mnist":
        full, test, num_classes = _fashion_mnist(cfg)
    elif cfg.dataset == "image_folder":
        full, test, num_classes = _image_folder(cfg)
    else:
        full, test, num_classes = _generated(cfg, seed)
    n = len(full)
    if cfg.held_out + greedy_images >= n:
        raise ValueError(f"data.held_out ({cfg.held_out}) + greedy images ({greedy_images}) leave no training "
                         f"images out of {n}")
    perm = split_permutation(n, seed)
    held_out = perm[:cfg.held_out]
    greedy = perm[cfg.held_out:cfg.held_out + greedy_images]
    rest = perm[cfg.held_out + greedy_images:]
    if cfg.train_subset is not None:
        rest = rest[:cfg.train_subset]
    sample, _ = full.load(torch.arange(1))
    if sample.shape[-1] != sample.shape[-2]:
        raise ValueError(f"images must be square after resizing, got {tuple(sample.shape[-2:])}")
    return Splits(full.take(rest), full.take(held_out), full.take(greedy) if greedy_images else None, test,
                  num_classes, cfg.channels, int(sample.shape[-1]))
