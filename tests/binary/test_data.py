"""IDX and CIFAR-10 readers on generated files in the same formats; batches and augmentation."""
import os
import pickle

import numpy as np
import pytest
import torch

from tasknas.plugins.binary import data as data_module
from tasknas.plugins.binary.data import (
    ImageSet,
    Normalizer,
    augment,
    batches,
    find_fashion_mnist,
    load_cifar10,
    load_fashion_mnist,
    read_plain_pickle,
    split_indices,
    write_cifar10,
    write_fashion_mnist,
    write_idx,
)


def _images(n: int, channels: int, size: int, seed: int) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8),
                    torch.randint(0, 10, (n,), generator=g))


def test_idx_header_is_magic_type_ndim_then_big_endian_dims(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_idx(tmp_path / "a-idx2-ubyte", array)
    raw = (tmp_path / "a-idx2-ubyte").read_bytes()
    assert raw == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])


def test_a_damaged_idx_file_is_one_error_naming_it(tmp_path):
    write_fashion_mnist(tmp_path, _images(4, 1, 8, 0), _images(2, 1, 8, 1))
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte .*not a readable Fashion-MNIST IDX pair"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_round_trips_through_its_idx_files(tmp_path):
    train, test = _images(20, 1, 28, 0), _images(8, 1, 28, 1)
    write_fashion_mnist(tmp_path, train, test)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                                                         "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    loaded = load_fashion_mnist(tmp_path)  # through torchvision, after unpacking into its layout
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert torch.equal(loaded.train.images, train.images) and torch.equal(loaded.train.labels, train.labels)
    assert torch.equal(loaded.test.images, test.images) and loaded.in_channels == 1 and loaded.num_classes == 10


def test_fashion_mnist_is_found_in_the_system_folder_before_the_cache(tmp_path, monkeypatch):
    system, cache = tmp_path / "system", tmp_path / "cache"
    monkeypatch.setattr(data_module, "FASHION_MNIST_SYSTEM_DIR", system)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    with pytest.raises(FileNotFoundError) as info:
        find_fashion_mnist()
    message = str(info.value)
    assert str(system) in message and str(cache / "tasknas/data/fashion-mnist") in message
    assert "scripts/fetch_fashion_mnist.sh" in message
    write_fashion_mnist(cache / "tasknas/data/fashion-mnist", _images(4, 1, 28, 0), _images(2, 1, 28, 1), gz=False)
    assert find_fashion_mnist()["t10k-images-idx3-ubyte"].parent == cache / "tasknas/data/fashion-mnist"
    write_fashion_mnist(system, _images(4, 1, 28, 0), _images(2, 1, 28, 1))
    assert find_fashion_mnist()["train-labels-idx1-ubyte"] == system / "train-labels-idx1-ubyte.gz"


def test_cifar10_round_trips_through_its_python_batches(tmp_path):
    train, test = _images(23, 3, 32, 0), _images(7, 3, 32, 1)
    folder = write_cifar10(tmp_path, train, test)
    assert sorted(p.name for p in folder.iterdir()) == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batch = read_plain_pickle(folder / "data_batch_1")
    assert batch[b"data"].shape == (5, 3072) and batch[b"data"].dtype == np.uint8 and len(batch[b"labels"]) == 5
    for root in (tmp_path, folder):  # the parent folder or cifar-10-batches-py itself
        loaded = load_cifar10(root)
        assert torch.equal(loaded.train.images, train.images) and torch.equal(loaded.train.labels, train.labels)
        assert torch.equal(loaded.test.images, test.images) and torch.equal(loaded.test.labels, test.labels)


def test_cifar10_names_the_missing_batch(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1' does not exist"):
        load_cifar10(tmp_path)


def test_split_indices_is_seeded_and_checks_the_subset_size():
    a, b = split_indices(100, 10, seed=3), split_indices(100, 10, seed=3)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 10 and not np.array_equal(a, split_indices(100, 10, 4))
    assert sorted(split_indices(5, None, 0).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="subset of 101 images asked from a set of 100"):
        split_indices(100, 101, 0)


def test_batches_in_order_are_the_normalised_images():
    data = _images(10, 1, 4, 0)
    norm = Normalizer.of(data.images)
    x = torch.cat([b[0] for b in batches(data, 4, norm)])
    assert torch.allclose(x, (data.images.float() / 255 - norm.mean[0]) / norm.std[0])
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-5
    assert [len(b[1]) for b in batches(data, 4, norm, drop_last=True)] == [4, 4]


def test_batches_with_a_generator_are_reproducible():
    data = _images(12, 1, 6, 0)
    norm = Normalizer.of(data.images)
    run = lambda: [b for b in batches(data, 5, norm, torch.Generator().manual_seed(1), padding=2)]  # noqa: E731
    first, second = run(), run()
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))
    assert sorted(torch.cat([b[1] for b in first]).tolist()) == sorted(data.labels.tolist())


def test_augment_is_a_crop_of_the_padded_image_possibly_flipped():
    images = torch.randint(1, 256, (6, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = augment(images, 1, torch.Generator().manual_seed(2))
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    for img, pad in zip(out, padded):
        crops = [pad[:, dy:dy + 4, dx:dx + 4] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(img, c) or torch.equal(img, c.flip(-1)) for c in crops)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_cifar_batch_that_carries_code_is_refused_without_running_it(tmp_path):
    folder = write_cifar10(tmp_path, _images(10, 3, 32, 0), _images(5, 3, 32, 1))
    marker = tmp_path / "ran"
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": _Payload(str(marker)), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_2: refused: it asks for posix.mkdir, which is not plain data"):
        load_cifar10(tmp_path)
    assert not marker.exists()
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": np.array([object()]), b"labels": []}))
    with pytest.raises(ValueError, match="data_batch_2: refused: it asks for builtins.object"):
        load_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(")  # truncated
    with pytest.raises(ValueError, match="test_batch: not a readable CIFAR-10 batch"):
        read_plain_pickle(folder / "test_batch")
