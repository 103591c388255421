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

#: A pair of extra images and their labels, as ``digitnet evaluate --data`` and
#: ``digitnet train --add`` read it and the page's "Download my digits" writes it.
PAIR = {"images": "images-idx3-ubyte", "labels": "labels-idx1-ubyte"}
#: The most times an added image may be shown per epoch (``with_added``).
MAX_ADD_WEIGHT = 100

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
        if path.suffix == ".gz" and not gzipped:
            raise DataError(f"{path}: not a gzip file (it does not start with gzip's 1f 8b)")
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


def load_pair(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The pair ``images-idx3-ubyte`` and ``labels-idx1-ubyte`` (raw or ``.gz``) in a
    folder: uint8 images (N, rows·cols) and labels (N,), every header checked."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory of IDX files")
    images = _images(_find(directory, PAIR["images"]))
    return images, _labels(_find(directory, PAIR["labels"]), len(images))


def has_pair(directory: str | os.PathLike) -> bool:
    """Whether a folder holds an images file of ``PAIR`` (raw or ``.gz``)."""
    return any((Path(directory) / f"{PAIR['images']}{gz}").exists() for gz in ("", ".gz"))


def load_scored(directory: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels a model is scored on: a folder's MNIST-style test split
    (the shipped MNIST's by default) or, in a folder without one, its ``PAIR``."""
    if directory is not None and Path(directory).is_dir() and has_pair(directory):
        test = [Path(directory) / f"{FILES['test_images']}{gz}" for gz in ("", ".gz")]
        if not any(p.exists() for p in test):
            return load_pair(directory)
    return load_split(directory, "test")


def with_added(data: Dataset, images: np.ndarray, labels: np.ndarray, weight: int = 1) -> Dataset:
    """``data`` with extra uint8 images (M, n_0) and labels (M,) in its training set,
    each ``weight`` times (1-``MAX_ADD_WEIGHT``), so an epoch shows each of them that
    often: train_images (N + weight·M, n_0).  The test set is left as it is."""
    if isinstance(weight, bool) or not isinstance(weight, int | np.integer):
        raise ValueError(f"add weight: expected a whole number 1-{MAX_ADD_WEIGHT}, got {weight!r}")
    if not 1 <= weight <= MAX_ADD_WEIGHT:
        raise ValueError(f"add weight: expected a whole number 1-{MAX_ADD_WEIGHT}, got {weight}")
    images, labels = np.asarray(images), np.asarray(labels)
    pixels = data.train_images.shape[1]
    if images.ndim != 2 or images.shape[1] != pixels or images.dtype != np.uint8:
        raise ValueError(
            f"added images: expected uint8 (M, {pixels}) like the training images, "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"added labels: expected {len(images)} whole numbers (one per image), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    classes = int(data.train_labels.max()) + 1
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        found = f"{labels.min()}-{labels.max()}"
        raise ValueError(f"added labels: expected 0-{classes - 1}, found {found}")
    return Dataset(
        np.concatenate([data.train_images, np.tile(images, (weight, 1))]),
        np.concatenate([data.train_labels, np.tile(labels.astype(np.uint8), weight)]),
        data.test_images,
        data.test_labels,
    )


def sha256_uncompressed(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content after gzip decompression (if gzip'd)."""
    opener = gzip.open if Path(path).read_bytes()[:2] == b"\x1f\x8b" else open
    digest = hashlib.sha256()
    with opener(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
