"""IDX files (the MNIST format), read with every header field checked.

An IDX file is: two zero bytes, a type code, the number of dimensions n, then n
big-endian uint32 sizes, then the values, big-endian, in C order.  Files may be
gzip'd.  MNIST itself ships inside this package, so ``load_mnist()`` needs no network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .paths import open_regular

#: IDX type code -> NumPy dtype (big-endian, as the format stores it).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The four files of an MNIST-style data set (each may end in .gz).
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: Refuse to read more than this many bytes of values from one file.
MAX_PAYLOAD = 1 << 31
_CHUNK = 1 << 20


class DataError(ValueError):
    """A data file is missing, corrupt or not what was expected."""


def _read_exactly(stream, n: int, path: Path, what: str) -> bytearray:
    """Read n bytes, in chunks (so a lying header cannot make us allocate), or fail."""
    data, got = bytearray(), 0
    while got < n:
        try:
            chunk = stream.read(min(_CHUNK, n - got))
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a readable gzip or IDX file ({e})") from None
        if not chunk:
            raise DataError(f"{path}: truncated {what}: expected {n} bytes, found {got}")
        data += chunk
        got += len(chunk)
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip'd) into an array of its declared type and shape.

    Checks the magic number, the type code, the dimensions and that the payload is
    exactly as long as the dimensions say; anything else raises DataError.
    """
    path = Path(path)
    with open_regular(path, DataError, "an IDX file") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        head = _read_exactly(stream, 4, path, "header")
        if head[:2] != b"\0\0":
            raise DataError(
                f"{path}: bad magic number 0x{head.hex()}: an IDX file starts with two zero "
                "bytes, a type code and the number of dimensions (e.g. 0x00000803)"
            )
        code, ndim = head[2], head[3]
        if code not in IDX_TYPES:
            known = ", ".join(f"0x{c:02x}" for c in IDX_TYPES)
            raise DataError(f"{path}: unknown IDX type code 0x{code:02x}; expected one of {known}")
        if ndim == 0:
            raise DataError(f"{path}: IDX header declares 0 dimensions")
        shape = tuple(
            int(d) for d in np.frombuffer(_read_exactly(stream, 4 * ndim, path, "header"), ">u4")
        )
        dtype = IDX_TYPES[code]
        size = int(np.prod(shape, dtype=object)) * dtype.itemsize
        # the nonzero dimensions alone: (0, 2³², 2³²) holds nothing but is no array
        extent = int(np.prod([d for d in shape if d], dtype=object)) * dtype.itemsize
        if max(size, extent) > MAX_PAYLOAD:
            raise DataError(
                f"{path}: header declares {shape} values ({size} bytes), "
                f"more than the {MAX_PAYLOAD}-byte limit"
            )
        if not gzipped:
            actual = os.fstat(raw.fileno()).st_size - 4 - 4 * ndim
            if actual != size:
                raise DataError(
                    f"{path}: header declares shape {shape} ({size} bytes of values) "
                    f"but the file holds {actual} bytes of values"
                )
        payload = _read_exactly(stream, size, path, "payload")
        try:
            extra = stream.read(1)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip stream ({e})") from None
        if extra:
            raise DataError(
                f"{path}: more data than the header's shape {shape} declares ({size} bytes)"
            )
    values = np.frombuffer(payload, dtype=dtype).reshape(shape)  # shares the bytearray
    return values if dtype.itemsize == 1 else values.astype(dtype.newbyteorder("="))


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 rows (N, 784) with labels (N,) in 0-9; train and test."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def mnist_dir() -> Path:
    """The folder of the MNIST copy that ships with digitnet."""
    return Path(str(resources.files("digitnet") / "mnist"))


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():  # read_idx refuses what is not a regular file
            return candidate
    raise DataError(f"{directory}: no {name} or {name}.gz")


def _images(path: Path) -> np.ndarray:
    images = read_idx(path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{path}: expected uint8 images of shape (N, rows, cols), "
            f"got {images.dtype} of shape {images.shape}"
        )
    return images.reshape(len(images), -1)


def _labels(path: Path, n_images: int) -> np.ndarray:
    labels = read_idx(path)
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{path}: expected uint8 labels (N,), got {labels.dtype} {labels.shape}")
    if len(labels) != n_images:
        raise DataError(f"{path}: {len(labels)} labels for {n_images} images")
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: labels must be 0-9, found {labels.max()}")
    return labels


def load_split(directory: str | os.PathLike | None = None, split: str = "test"):
    """One split ("train" or "test") of an MNIST-style folder: uint8 images
    (N, rows·cols) and labels (N,).  ``directory`` defaults to the shipped MNIST."""
    directory = mnist_dir() if directory is None else Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory of IDX files")
    images = _images(_find(directory, FILES[f"{split}_images"]))
    return images, _labels(_find(directory, FILES[f"{split}_labels"]), len(images))


def load_mnist(directory: str | os.PathLike | None = None) -> Dataset:
    """Load MNIST (or any data set in its four IDX files, e.g. Fashion-MNIST).

    ``directory`` defaults to the copy inside the package.  Images come back as
    uint8 rows (N, rows·cols); scale them to [0, 1] when you use them.
    """
    train_images, train_labels = load_split(directory, "train")
    test_images, test_labels = load_split(directory, "test")
    if train_images.shape[1] != test_images.shape[1]:
        raise DataError(
            f"{directory}: train images of {train_images.shape[1]} pixels, "
            f"test images of {test_images.shape[1]}"
        )
    return Dataset(train_images, train_labels, test_images, test_labels)


def sha256_uncompressed(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content after gzip decompression (if gzip'd)."""
    opener = gzip.open if Path(path).read_bytes()[:2] == b"\x1f\x8b" else open
    digest = hashlib.sha256()
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
