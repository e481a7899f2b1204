"""Image classification data in their standard on-disk formats, held in memory as uint8 tensors.

* Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): the four IDX files (``train-images-idx3-ubyte[.gz]`` ...),
  looked up in the Debian package's folder, then in the user cache that ``scripts/fetch_fashion_mnist.sh``
  fills, and read by ``torchvision.datasets.FashionMNIST``. That class wants plain files under
  ``<root>/FashionMNIST/raw``; when a folder holds the files elsewhere (or gzipped) they are unpacked into that
  layout once, inside the folder, or in the cache when the folder is not writable (the system folder).
* CIFAR-10 (Krizhevsky, 2009): the python version's pickled batches (``cifar-10-batches-py/data_batch_1..5``
  and ``test_batch``) at a local path. ``torchvision.datasets.CIFAR10`` is not used: it calls ``pickle.load``,
  which runs whatever code a file carries, and demands the md5 sums of the real files. The batches are read
  by :class:`PlainUnpickler`, which admits only the plain data the files hold (dict, list, str, bytes, int,
  float and numpy uint8 arrays); a file that needs anything else is refused in one line.

Writers for both formats exist so that tests (and anyone without the data) can make small sets that the
readers load exactly as the real ones. Batches are drawn with an explicit ``torch.Generator``: shuffling
and augmentation (random crop with zero padding, horizontal flip) are reproducible.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
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
TORCHVISION_RAW = "FashionMNIST/raw"
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"


def fashion_mnist_cache_dir() -> Path:
    """Where ``scripts/fetch_fashion_mnist.sh`` puts the IDX files: ``$XDG_CACHE_HOME`` or ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tasknas" / "data" / "fashion-mnist"


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
    for candidate in (folder / TORCHVISION_RAW / name, folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def fashion_mnist_dirs(root: str | os.PathLike | None) -> list[Path]:
    """The folders looked in: ``root`` alone if given, else the system folder then the cache."""
    return [Path(root).expanduser()] if root else [FASHION_MNIST_SYSTEM_DIR, fashion_mnist_cache_dir()]


def find_fashion_mnist(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """The four Fashion-MNIST IDX files from the first folder that holds all of them: in torchvision's layout
    (``FashionMNIST/raw/<name>``), or in the folder itself, plain or gzipped."""
    folders = fashion_mnist_dirs(root)
    for folder in folders:
        found = {name: _find_file(folder, name) for name in FASHION_MNIST_FILES}
        if all(found.values()):
            return found
    where = " nor ".join(f"{str(f)!r}" for f in folders)
    raise FileNotFoundError(f"Fashion-MNIST IDX files ({', '.join(FASHION_MNIST_FILES)}, plain or .gz) are not in "
                            f"{where}; run {FETCH_SCRIPT} (or install the Debian package dataset-fashion-mnist), "
                            "or set data.root to the folder that holds them")


def torchvision_root(files: dict[str, Path]) -> Path:
    """The root that ``torchvision.datasets.FashionMNIST`` reads ``files`` from: their own when they already
    sit in ``<root>/FashionMNIST/raw``, else a folder where they are unpacked (gzip) or copied into that layout
    (the files' folder when writable, else the cache); unpacking is redone when a source is newer."""
    folders = {path.parent for path in files.values()}
    if len(folders) == 1:
        folder = folders.pop()
        if folder.parts[-2:] == tuple(TORCHVISION_RAW.split("/")):
            return folder.parents[1]
    else:
        raise ValueError(f"the Fashion-MNIST files are in different folders: {sorted(map(str, folders))}")
    target = folder if os.access(folder, os.W_OK) else fashion_mnist_cache_dir()
    raw = target / TORCHVISION_RAW
    raw.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        dest = raw / name
        if dest.is_file() and dest.stat().st_mtime >= source.stat().st_mtime:
            continue

        def unpack(tmp: str, source: Path = source) -> None:
            with _open(source) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)

        atomic_write(dest, unpack)
    return target


def _open(path: Path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def load_fashion_mnist(root: str | os.PathLike | None = None) -> DataSplits:
    """Fashion-MNIST through ``torchvision.datasets.FashionMNIST`` (see :func:`torchvision_root`)."""
    from torchvision.datasets import FashionMNIST

    files = find_fashion_mnist(root)
    tv_root = torchvision_root(files)
    sets = []
    for train in (True, False):
        images_name, labels_name = FASHION_MNIST_FILES[:2] if train else FASHION_MNIST_FILES[2:]
        try:
            split = FashionMNIST(str(tv_root), train=train, download=False)
            images, labels = split.data, split.targets
        except Exception as exc:  # torchvision raises TypeError / ValueError / RuntimeError on a damaged file
            lines = str(exc).strip().splitlines()
            raise ValueError(f"{files[images_name]} / {files[labels_name]}: not a readable Fashion-MNIST IDX pair "
                             f"({type(exc).__name__}: {lines[0] if lines else ''})") from None
        if images.ndim != 3 or images.dtype != torch.uint8 or labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{files[images_name]}: expected uint8 images (N, H, W) with N labels, got "
                             f"{images.dtype} {tuple(images.shape)} and labels {tuple(labels.shape)}")
        sets.append(ImageSet(images.unsqueeze(1).contiguous(), labels.long()))
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


class PlainUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR batches: plain containers and scalars, and numpy arrays rebuilt by the numpy
    functions their pickles name (``_reconstruct`` / ``_frombuffer``, ``ndarray``, ``dtype``, ``scalar``).
    Any other global (``os.system``, ``builtins.eval``, a class) is refused."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                         ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                         ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                         ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")})

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which is not plain data (allowed: dict, "
                                         "list, str, bytes, int, float, numpy arrays)")
        return super().find_class(module, name)


def read_plain_pickle(path: Path) -> object:
    """The object in a pickle file made of plain data only (:class:`PlainUnpickler`); one error otherwise."""
    data = path.read_bytes()
    try:
        obj = PlainUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: refused: {exc}") from None
    except Exception as exc:  # truncated or not a pickle: EOFError, ValueError, ...
        raise ValueError(f"{path}: not a readable CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise ValueError(f"{path}: refused: an array of Python objects is not plain data")
    return obj


def _read_cifar_batch(path: Path) -> ImageSet:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch {str(path)!r} does not exist (expected the python version: "
                                f"{CIFAR10_DIR}/{', '.join(CIFAR10_TRAIN)}, {CIFAR10_TEST})")
    batch = read_plain_pickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path}: not a CIFAR-10 python batch (a dict with b'data' and b'labels')")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, 3072), got "
                         f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(v) is int and 0 <= v < 10
                                                                            for v in labels):
        raise ValueError(f"{path}: b'labels' must be a list of {len(data)} ints in 0..9")
    return ImageSet(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()),
                    torch.tensor(labels, dtype=torch.int64))


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
        pickle.dump(obj, f, protocol=2)  # the protocol of the published files


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
