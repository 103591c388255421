"""The IDX reader and the MNIST copy shipped inside the package."""

import gzip
import struct

import numpy as np
import pytest

from conftest import SHARED_MNIST
from digitnet.files.data import (
    FILES,
    DataError,
    load_mnist,
    mnist_dir,
    read_idx,
    sha256_uncompressed,
)


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def sums(path):
    return dict(reversed(line.split()) for line in path.read_text().splitlines() if line.strip())


def test_shipped_mnist_matches_its_checksums():
    expected = sums(mnist_dir() / "SHA256SUMS")
    assert set(expected) == set(FILES.values())
    for name, digest in expected.items():
        assert sha256_uncompressed(mnist_dir() / f"{name}.gz") == digest, name


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"{SHARED_MNIST} is not beside the repo")
def test_shipped_mnist_matches_the_shared_checksums():
    expected = sums(SHARED_MNIST / "SHA256SUMS")
    for name, digest in expected.items():
        assert sha256_uncompressed(mnist_dir() / f"{name}.gz") == digest, name


def test_load_mnist_shapes_and_labels(mnist):
    assert mnist.train_images.shape == (60_000, 784)
    assert mnist.test_images.shape == (10_000, 784)
    assert mnist.train_images.dtype == np.uint8
    counts = np.bincount(mnist.train_labels, minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    "array, code",
    [
        (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08),
        (np.array([-3, 0, 7], dtype=np.int16), 0x0B),
        (np.array([[1.5, -2.25]], dtype=np.float32), 0x0D),
        (np.array([1e300, -1.0], dtype=np.float64), 0x0E),
    ],
)
def test_idx_round_trip(tmp_path, array, code, compress):
    data = idx_bytes(array, code)
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    out = read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.shape == array.shape


def test_data_folder_of_another_idx_set(tmp_path):
    """--data DIR reads any four files with MNIST's names (e.g. Fashion-MNIST)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("test", 10)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        (tmp_path / FILES[f"{split}_images"]).write_bytes(idx_bytes(images))
        (tmp_path / f"{FILES[f'{split}_labels']}.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    data = load_mnist(tmp_path)
    assert data.train_images.shape == (30, 784) and data.test_labels.shape == (10,)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "truncated header"),
        (b"\x01\x02" + GOOD[2:], "bad magic number"),
        (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX type code 0x07"),
        (GOOD[:3] + b"\x00", "0 dimensions"),
        (GOOD[:-1], "holds 11 bytes"),
        (GOOD + b"\x00", "holds 13 bytes"),
        (GOOD[:6], "truncated header"),
        (gzip.compress(GOOD)[:-12], "truncated payload|not a readable gzip"),
        (gzip.compress(GOOD + b"xx"), "more data than the header"),
        (b"\x1f\x8b" + b"not really gzip" * 3, "not a readable gzip"),
        (b"%PDF-1.4 definitely not idx", "bad magic number"),
        (struct.pack(">BBBBIII", 0, 0, 8, 3, 60000, 28000, 28000), "limit"),
        (gzip.compress(struct.pack(">BBBBII", 0, 0, 8, 2, 100000, 10000)), "truncated payload"),
    ],
)
def test_bad_idx_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_count_mismatch_between_images_and_labels(tmp_path):
    images = np.zeros((5, 28, 28), np.uint8)
    for split in ("train", "test"):
        (tmp_path / FILES[f"{split}_images"]).write_bytes(idx_bytes(images))
        (tmp_path / FILES[f"{split}_labels"]).write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match="4 labels for 5 images"):
        load_mnist(tmp_path)


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(DataError, match="no train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)
    with pytest.raises(DataError, match="cannot open"):
        read_idx(tmp_path / "missing.idx")
