"""Model files: safetensors weights with a JSON record of how they were made.

A model file is a safetensors file (an 8-byte header length, a JSON header, raw
little-endian tensor bytes; loading it runs no code).  It holds, for each layer i:

- ``layers.{i}.weight``: float32 ``(n_out, n_in)``, the matrix W of ``a' = σ(W a + b)``
- ``layers.{i}.bias``: float32 ``(n_out,)``

and in the header's metadata a ``digitnet`` entry: JSON with ``format_version``,
``sizes``, ``activation``, ``output``, ``loss``, ``seed``, ``history``,
``test_accuracy`` and the training ``config``.  The input is the 784 pixel values
in [0, 1] (row by row, 0 background, 1 ink): any normalisation used in training is
already folded into layer 0.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as safetensors_bytes

from .activations import ACTIVATIONS, OUTPUTS
from .network import Network, check_sizes

FORMAT_VERSION = 1
#: Format versions this code reads.
KNOWN_VERSIONS = {1}
#: A model file larger than this is refused before it is read.
MAX_FILE_BYTES = 1 << 30
#: Tensor dtypes accepted on load (all converted to float32).
DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16}


class ModelFileError(ValueError):
    """A model file is missing, corrupt, or not one digitnet can use."""


@dataclass
class Model:
    """A network with its record: ``info`` is the file's ``digitnet`` metadata."""

    network: Network
    info: dict = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float | None:
        return self.info.get("test_accuracy")


def tensor_names(n_layers: int) -> list[str]:
    """The file's tensor names in order: layers.0.weight, layers.0.bias, ..."""
    return [f"layers.{i}.{kind}" for i in range(n_layers) for kind in ("weight", "bias")]


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a
    rename, so ``path`` holds either its old content or all of the new, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_mode(path: Path) -> int:
    """The mode ``path`` has, or a new file would get under the current umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def save(path: str | os.PathLike, network: Network, info: dict | None = None) -> None:
    """Save ``network`` and its record ``info`` atomically to ``path``.  ``info`` holds
    JSON values, or records with ``to_dict()``: ``config.record(config, history)``
    makes the one every command reads."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory; give a file name such as model.safetensors")
    if not path.parent.is_dir():
        raise ModelFileError(f"{path}: folder {path.parent} does not exist")
    record = {
        **(info or {}),
        "format_version": FORMAT_VERSION,
        "sizes": list(network.sizes),
        "activation": network.activation_name,
        "output": network.output_name,
        "input": "pixels in [0, 1], row by row; 0 is background, 1 is ink",
    }
    tensors = {}
    for i, (W, b) in enumerate(zip(network.W, network.b, strict=True)):
        tensors[f"layers.{i}.weight"] = np.ascontiguousarray(W, dtype=np.float32)
        tensors[f"layers.{i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    text = json.dumps(record, allow_nan=False, default=_as_json)
    data = safetensors_bytes(tensors, metadata={"digitnet": text})
    atomic_write(path, data)


def _as_json(value):
    """Records such as ``TrainConfig`` and ``History`` as their ``to_dict()``."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot store a {type(value).__name__} in a model file's record")


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and tensors of a safetensors file, or ModelFileError."""
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, expected a .safetensors model file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ModelFileError(f"{path}: cannot open ({e.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES}-byte limit")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # the parser's own errors, for any malformed file
        reason = str(e).strip() or type(e).__name__
        raise ModelFileError(f"{path}: not a valid safetensors file ({reason})") from None
    return metadata, tensors


def _record(path: Path, metadata: dict) -> dict:
    """The ``digitnet`` metadata, checked field by field."""
    if "digitnet" not in metadata:
        raise ModelFileError(f"{path}: safetensors file without 'digitnet' metadata")
    try:
        info = json.loads(metadata["digitnet"])
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{path}: 'digitnet' metadata is not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: 'digitnet' metadata must be a JSON object")
    version = info.get("format_version")
    if type(version) is not int or version not in KNOWN_VERSIONS:
        raise ModelFileError(
            f"{path}: unknown format version {version!r}; this digitnet reads "
            f"{sorted(KNOWN_VERSIONS)}"
        )
    for key, table in (("activation", ACTIVATIONS), ("output", OUTPUTS)):
        if not isinstance(info.get(key), str) or info[key] not in table:
            raise ModelFileError(
                f"{path}: unknown {key} {info.get(key)!r}; expected one of {sorted(table)}"
            )
    sizes = info.get("sizes")
    if not isinstance(sizes, list) or not all(type(n) is int for n in sizes):
        raise ModelFileError(f"{path}: 'sizes' must be a list of whole numbers, got {sizes!r}")
    try:
        info["sizes"] = list(check_sizes(sizes))
    except ValueError as e:
        raise ModelFileError(f"{path}: {e}") from None
    return info


def load(path: str | os.PathLike) -> Model:
    """Load a model file, checking version, names, dtypes, shapes and values."""
    path = Path(path)
    metadata, tensors = _read(path)
    info = _record(path, metadata)
    sizes = info["sizes"]
    expected = {}  # tensor name -> (layer, kind, shape)
    for i, (n_in, n_out) in enumerate(pairwise(sizes)):
        expected[f"layers.{i}.weight"] = (i, 0, (n_out, n_in))
        expected[f"layers.{i}.bias"] = (i, 1, (n_out,))
    arrays: list[list] = [[None, None] for _ in range(len(sizes) - 1)]
    for name, tensor in tensors.items():
        if name not in expected:
            raise ModelFileError(f"{path}: unknown tensor {name!r}; expected {', '.join(expected)}")
        layer, kind, shape = expected[name]
        if tensor.dtype.name not in DTYPES:
            raise ModelFileError(
                f"{path}: tensor {name!r} is {tensor.dtype}; expected one of {sorted(DTYPES)}"
            )
        if tensor.shape != shape:
            raise ModelFileError(
                f"{path}: tensor {name!r} has shape {tensor.shape}, but sizes {sizes} need {shape}"
            )
        if not np.isfinite(tensor).all():
            raise ModelFileError(f"{path}: tensor {name!r} holds NaN or infinite values")
        arrays[layer][kind] = tensor.astype(np.float32)
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise ModelFileError(f"{path}: missing tensors {', '.join(missing)}")
    acc = info.get("test_accuracy")
    if acc is not None and not (isinstance(acc, (int, float)) and math.isfinite(acc)):
        raise ModelFileError(f"{path}: test_accuracy must be a number, got {acc!r}")
    network = Network.from_arrays(
        [w for w, _ in arrays], [b for _, b in arrays], info["activation"], info["output"]
    )
    return Model(network, info)
