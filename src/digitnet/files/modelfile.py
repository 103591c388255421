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
import os
import struct
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as safetensors_bytes

from ..learn.network import Network, count_parameters
from ..limits import MAX_LAYERS
from ..settings import short
from .metadata import MetadataError, model_record, parse_json
from .paths import atomic_write, check_output, open_regular

__all__ = [
    "Model", "ModelFileError", "atomic_write", "check_output", "load", "save", "to_bytes"
]

FORMAT_VERSION = 1
#: Format versions this code reads.
KNOWN_VERSIONS = {1}
#: A model file larger than this is refused before it is read.
MAX_FILE_BYTES = 1 << 30
#: A safetensors header (tensor table and metadata) longer than this is refused.
MAX_HEADER_BYTES = 32 * 1024 * 1024
#: Most tensors a model or checkpoint file may declare.
MAX_TENSORS = 4 * MAX_LAYERS
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


def save(path: str | os.PathLike, network: Network, info: dict | None = None) -> None:
    """Save ``network`` and its record ``info`` atomically to ``path``.  ``info`` holds
    JSON values, or records with ``to_dict()``: ``config.record(config, history)``
    makes the one every command reads."""
    path = Path(path)
    check_output(path)
    atomic_write(path, to_bytes(network, info))


def input_description(n_inputs: int) -> str:
    """What a network of ``n_inputs`` inputs reads, for the records of model files and
    exports: 784 are MNIST's 28x28 pixels; any other width is the network's own."""
    if n_inputs == 784:
        return "pixels in [0, 1], row by row; 0 is background, 1 is ink"
    return f"{n_inputs} values, the network's own inputs (not a 28x28 picture)"


def to_bytes(network: Network, info: dict | None = None) -> bytes:
    """The bytes of the model file ``save`` writes, e.g. for a download."""
    record = {
        **(info or {}),
        "format_version": FORMAT_VERSION,
        "sizes": list(network.sizes),
        "activation": network.activation_name,
        "output": network.output_name,
        "input": input_description(network.sizes[0]),
    }
    tensors = {}
    for i, (W, b) in enumerate(zip(network.W, network.b, strict=True)):
        tensors[f"layers.{i}.weight"] = np.ascontiguousarray(W, dtype=np.float32)
        tensors[f"layers.{i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    text = json.dumps(record, allow_nan=False, default=_as_json)
    return safetensors_bytes(tensors, metadata={"digitnet": text})


def _as_json(value):
    """Records such as ``TrainConfig`` and ``History`` as their ``to_dict()``."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot store a {type(value).__name__} in a model file's record")


def expected_bytes(sizes, info: dict | None = None) -> int:
    """About how many bytes a model file of these layer sizes takes: float32 tensors,
    the tensor table, and the record ``info`` as JSON."""
    record = len(json.dumps(info, allow_nan=False, default=_as_json)) if info else 4096
    return count_parameters(sizes) * 4 + 200 * (len(sizes) - 1) + record + 1024


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and tensors of a safetensors file, or ModelFileError.

    The file must be a regular file (a FIFO would block), at most ``MAX_FILE_BYTES``;
    its header at most ``MAX_HEADER_BYTES`` and ``MAX_TENSORS`` tensors, all checked
    before a tensor is read."""
    with open_regular(path, ModelFileError, "a .safetensors model file") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_FILE_BYTES:
            raise ModelFileError(
                f"{path}: {size:,} bytes, more than the {MAX_FILE_BYTES:,}-byte limit"
            )
        head = f.read(8)
    if len(head) == 8 and struct.unpack("<Q", head)[0] > MAX_HEADER_BYTES:
        raise ModelFileError(
            f"{path}: not a valid safetensors file (its header declares "
            f"{struct.unpack('<Q', head)[0]:,} bytes, more than {MAX_HEADER_BYTES:,})"
        )
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            names = list(f.keys())
            if len(names) > MAX_TENSORS:
                raise ModelFileError(
                    f"{path}: {len(names):,} tensors, more than the {MAX_TENSORS} allowed"
                )
            tensors = {name: f.get_tensor(name) for name in names}
    except ModelFileError:
        raise
    except Exception as e:  # the parser's own errors, for any malformed file
        reason = short(str(e).strip(), 120) or type(e).__name__
        raise ModelFileError(f"{path}: not a valid safetensors file ({reason})") from None
    return metadata, tensors


def _record(path: Path, metadata: dict) -> dict:
    """The ``digitnet`` metadata, checked field by field (``metadata.MODEL``)."""
    if "digitnet" not in metadata:
        raise ModelFileError(f"{path}: safetensors file without 'digitnet' metadata")
    try:
        info = parse_json(metadata["digitnet"], "'digitnet' metadata")
    except MetadataError as e:
        raise ModelFileError(f"{path}: {e}") from None
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: 'digitnet' metadata must be a JSON object")
    version = info.get("format_version")
    if type(version) is not int or version not in KNOWN_VERSIONS:
        raise ModelFileError(
            f"{path}: unknown format version {short(version)}; this digitnet reads "
            f"{sorted(KNOWN_VERSIONS)}"
        )
    try:
        return model_record(info)
    except MetadataError as e:
        raise ModelFileError(f"{path}: {e}") from None


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
            raise ModelFileError(
                f"{path}: unknown tensor {short(name)}; expected {_names(expected)}"
            )
        layer, kind, shape = expected[name]
        if tensor.dtype.name not in DTYPES:
            raise ModelFileError(
                f"{path}: tensor {name!r} is {tensor.dtype}; expected one of {sorted(DTYPES)}"
            )
        if tensor.shape != shape:
            raise ModelFileError(
                f"{path}: tensor {name!r} has shape {tensor.shape}, but sizes "
                f"{short(sizes)} need {shape}"
            )
        if not np.isfinite(tensor).all():
            raise ModelFileError(f"{path}: tensor {name!r} holds NaN or infinite values")
        arrays[layer][kind] = tensor.astype(np.float32)
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise ModelFileError(f"{path}: missing tensors {_names(missing)}")
    network = Network.from_arrays(
        [w for w, _ in arrays], [b for _, b in arrays], info["activation"], info["output"]
    )
    return Model(network, info)


def _names(names) -> str:
    """Tensor names for a message: the first few and how many in all."""
    names = list(names)
    shown = ", ".join(names[:4])
    return shown if len(names) <= 4 else f"{shown}, ... ({len(names)} in all)"
