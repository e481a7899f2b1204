"""Image classification data in their standard on-disk formats, held in memory as uint8 tensors.

* Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) as IDX files (``train-images-idx3-ubyte[.gz]`` ...), the
  format of LeCun's MNIST; looked up in the Debian package's folder, then in the user cache that
  ``scripts/fetch_fashion_mnist.sh`` fills.
* CIFAR-10 (Krizhevsky, 2009) as the python version's pickled batches
  (``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``) at a local path.

Writers for both formats exist so that tests (and anyone without the data) can make small sets that the
readers load exactly as the real ones. Batches are drawn with an explicit ``torch.Generator``: shuffling
and augmentation (random crop with zero padding, horizontal flip) are reproducible.
"""
from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tasknas.core.state import atomic_write

IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FASHION_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                       "t10k-labels-idx1-ubyte")
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
FETCH_SCRIPT = "scripts/fetch_fashion_mnist.sh"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"


def fashion_mnist_cache_dir() -> Path:
    """Where ``scripts/fetch_fashion_mnist.sh`` puts the IDX files: ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tasknas" / "data" / "fashion-mnist"


def _open(path: Path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (plain or gzip) as a numpy array of its shape and type."""
    path = Path(path)
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (magic bytes {data[:4].hex()}; expected 0000 + a type code in "
                         f"{[hex(t) for t in IDX_TYPES]} + the number of dimensions)")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">u4")) if ndim else ()
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the file holds "
                         f"{len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends in ``.gz`` (atomically)."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}; allowed: {sorted(str(d) for d in codes)}")
    code = codes[native]
    if array.ndim > 255:
        raise ValueError(f"IDX holds at most 255 dimensions, got {array.ndim}")
    body = array.astype(IDX_TYPES[code]).tobytes()
    blob = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + body

    def write(tmp: str) -> None:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(tmp, "wb") as f:
            f.write(blob)

    atomic_write(path, write)


@dataclass(frozen=True)
class ImageSet:
    """Images ``(N, C, H, W)`` uint8 and labels ``(N,)`` int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{len(self.images)} images but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor | np.ndarray) -> ImageSet:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True)
class DataSplits:
    train: ImageSet
    test: ImageSet
    num_classes: int

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def fashion_mnist_dirs(root: str | os.PathLike | None) -> list[Path]:
    """The folders looked in: ``root`` alone if given, else the system folder then the cache."""
    return [Path(root).expanduser()] if root else [FASHION_MNIST_SYSTEM_DIR, fashion_mnist_cache_dir()]


def find_fashion_mnist(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """The four Fashion-MNIST IDX files (plain or .gz) from the first folder that holds all of them."""
    folders = fashion_mnist_dirs(root)
    for folder in folders:
        found = {name: _find_file(folder, name) for name in FASHION_MNIST_FILES}
        if all(found.values()):
            return found
    where = " nor ".join(f"{str(f)!r}" for f in folders)
    raise FileNotFoundError(f"Fashion-MNIST IDX files ({', '.join(FASHION_MNIST_FILES)}, plain or .gz) are not in "
                            f"{where}; run {FETCH_SCRIPT} (or install the Debian package dataset-fashion-mnist), "
                            "or set data.root to the folder that holds them")


def load_fashion_mnist(root: str | os.PathLike | None = None) -> DataSplits:
    files = find_fashion_mnist(root)
    arrays = [read_idx(files[name]) for name in FASHION_MNIST_FILES]
    sets = []
    for images, labels, path in ((arrays[0], arrays[1], files[FASHION_MNIST_FILES[0]]),
                                 (arrays[2], arrays[3], files[FASHION_MNIST_FILES[2]])):
        if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{path}: expected uint8 images (N, H, W) with N labels, got {images.dtype} "
                             f"{images.shape} and labels {labels.shape}")
        sets.append(ImageSet(torch.from_numpy(images).unsqueeze(1),
                             torch.from_numpy(labels.astype(np.int64))))
    return DataSplits(sets[0], sets[1], num_classes=10)


def write_fashion_mnist(folder: str | os.PathLike, train: ImageSet, test: ImageSet, gz: bool = True) -> None:
    """Write ``train`` / ``test`` (1 channel) as the four Fashion-MNIST IDX files."""
    suffix = ".gz" if gz else ""
    for (images_name, labels_name), split in zip((FASHION_MNIST_FILES[:2], FASHION_MNIST_FILES[2:]), (train, test)):
        if split.images.shape[1] != 1:
            raise ValueError(f"Fashion-MNIST images have 1 channel, got {split.images.shape[1]}")
        write_idx(Path(folder) / f"{images_name}{suffix}", split.images[:, 0].numpy())
        write_idx(Path(folder) / f"{labels_name}{suffix}", split.labels.numpy().astype(np.uint8))


def _cifar_dir(root: Path) -> Path:
    return root if (root / CIFAR10_TEST).is_file() else root / CIFAR10_DIR


def _read_cifar_batch(path: Path) -> ImageSet:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch {str(path)!r} does not exist (expected the python version: "
                                f"{CIFAR10_DIR}/{', '.join(CIFAR10_TRAIN)}, {CIFAR10_TEST})")
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError):
        raise ValueError(f"{path}: not a CIFAR-10 python batch (a dict with b'data' and b'labels')") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: expected data of shape (N, 3072) and N labels, got {data.shape} and "
                         f"{labels.shape}")
    return ImageSet(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels))


def load_cifar10(root: str | os.PathLike) -> DataSplits:
    """CIFAR-10 from ``root`` (the folder holding ``cifar-10-batches-py``, or that folder itself)."""
    folder = _cifar_dir(Path(root).expanduser())
    parts = [_read_cifar_batch(folder / name) for name in CIFAR10_TRAIN]
    train = ImageSet(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
    return DataSplits(train, _read_cifar_batch(folder / CIFAR10_TEST), num_classes=10)


def write_cifar10(root: str | os.PathLike, train: ImageSet, test: ImageSet) -> Path:
    """Write ``train`` (split into 5 batches) and ``test`` as ``root/cifar-10-batches-py``; returns that folder."""
    folder = Path(root) / CIFAR10_DIR
    for name, split in [*zip(CIFAR10_TRAIN, (train.take(i) for i in np.array_split(np.arange(len(train)), 5))),
                        (CIFAR10_TEST, test)]:
        if tuple(split.images.shape[1:]) != (3, 32, 32):
            raise ValueError(f"CIFAR-10 images are (3, 32, 32), got {tuple(split.images.shape[1:])}")
        batch = {b"batch_label": name.encode(), b"labels": split.labels.tolist(),
                 b"data": split.images.reshape(len(split), -1).numpy(),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(len(split))]}
        atomic_write(folder / name, lambda tmp: _dump(batch, tmp))
    return folder


def _dump(obj: object, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def split_indices(n: int, subset: int | None, seed: int) -> np.ndarray:
    """A seeded random choice of ``subset`` of ``n`` indices (all of them, shuffled, when ``subset`` is None)."""
    if subset is not None and not 0 < subset <= n:
        raise ValueError(f"subset of {subset} images asked from a set of {n}")
    return np.random.default_rng(seed).permutation(n)[:subset]


@dataclass(frozen=True)
class Normalizer:
    """Per-channel ``(x / 255 - mean) / std`` with mean and std of a training set."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, images: torch.Tensor) -> Normalizer:
        x = images.double().div(255).transpose(0, 1).reshape(images.shape[1], -1)
        return cls(tuple(x.mean(1).tolist()), tuple(x.std(1).clamp(min=1e-6).tolist()))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return (images.float().div(255) - mean) / std


def augment(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the original size from the zero-padded images, then a random horizontal flip."""
    n, _, h, w = images.shape
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    if padding:
        padded = torch.nn.functional.pad(images, (padding,) * 4)
        images = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
    return torch.stack([img.flip(-1) if flip else img for img, flip in zip(images, flips)])


def batches(data: ImageSet, batch_size: int, normalize: Normalizer, generator: torch.Generator | None = None,
            padding: int | None = None, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised float batches. With ``generator`` the order is shuffled by it, and with ``padding`` (not
    None) each batch is augmented by it; without either, batches are in order and unchanged."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    n = len(data)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        images = data.images[idx]
        if padding is not None:
            if generator is None:
                raise ValueError("augmentation needs a generator")
            images = augment(images, padding, generator)
        yield normalize(images), data.labels[idx]


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)
