"""Model files: round trip, the documented layout, and rejection of bad files."""

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from digitnet.files.modelfile import FORMAT_VERSION, ModelFileError, atomic_write, load, save
from digitnet.files.paths import OutputError
from digitnet.learn.network import Network


@pytest.fixture
def net():
    return Network(rng=np.random.default_rng(5))


@pytest.fixture
def saved(tmp_path, net):
    path = tmp_path / "model.safetensors"
    save(path, net, {"loss": "cross-entropy", "seed": 5, "test_accuracy": 0.5})
    return path


def test_round_trip(saved, net):
    model = load(saved)
    np.testing.assert_array_equal(model.network.params, net.params)
    assert model.network.sizes == (784, 16, 16, 10)
    assert model.info["seed"] == 5 and model.test_accuracy == 0.5
    x = np.random.default_rng(0).random((4, 784))
    np.testing.assert_array_equal(model.network.forward(x), net.forward(x))


def test_layout_is_plain_safetensors(saved, net):
    """Any safetensors reader sees the documented tensor names, shapes and dtype."""
    tensors = load_file(saved)
    assert sorted(tensors) == sorted(
        f"layers.{i}.{kind}" for i in range(3) for kind in ("weight", "bias")
    )
    for i, (W, b) in enumerate(zip(net.W, net.b, strict=True)):
        assert tensors[f"layers.{i}.weight"].dtype == np.float32
        np.testing.assert_array_equal(tensors[f"layers.{i}.weight"], W)
        np.testing.assert_array_equal(tensors[f"layers.{i}.bias"], b)
    header_len = struct.unpack("<Q", saved.read_bytes()[:8])[0]
    header = json.loads(saved.read_bytes()[8 : 8 + header_len])
    info = json.loads(header["__metadata__"]["digitnet"])
    assert info["format_version"] == FORMAT_VERSION
    assert info["sizes"] == [784, 16, 16, 10]
    assert (info["activation"], info["output"]) == ("sigmoid", "softmax")


def write(path, tensors, info):
    metadata = None if info is None else {"digitnet": json.dumps(info)}
    save_file(tensors, str(path), metadata=metadata)


def good_parts(net):
    tensors = {}
    for i, (W, b) in enumerate(zip(net.W, net.b, strict=True)):
        tensors[f"layers.{i}.weight"] = W.copy()
        tensors[f"layers.{i}.bias"] = b.copy()
    info = {
        "format_version": 1,
        "sizes": [784, 16, 16, 10],
        "activation": "sigmoid",
        "output": "softmax",
    }
    return tensors, info


def test_hand_written_file_loads(tmp_path, net):
    tensors, info = good_parts(net)
    write(tmp_path / "m.safetensors", tensors, info)
    np.testing.assert_array_equal(load(tmp_path / "m.safetensors").network.params, net.params)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t, i: i.update(format_version=99), "unknown format version 99"),
        (lambda t, i: i.pop("format_version"), "unknown format version None"),
        (lambda t, i: i.update(activation="swish"), "unknown activation 'swish'"),
        (lambda t, i: i.update(output="__import__('os')"), "unknown output"),
        (lambda t, i: i.update(sizes=[784, 16, 10]), "shape"),
        (lambda t, i: i.update(sizes="784-16-16-10"), "list of whole numbers"),
        (lambda t, i: t.update({"layers.0.weight": t["layers.0.weight"].T.copy()}), "shape"),
        (
            lambda t, i: t.update({"layers.3.weight": np.zeros((1, 10), np.float32)}),
            "unknown tensor 'layers.3.weight'",
        ),
        (lambda t, i: t.pop("layers.2.bias"), "missing tensors layers.2.bias"),
        (lambda t, i: t["layers.1.weight"].__setitem__((0, 0), np.nan), "NaN or infinite"),
        (lambda t, i: t["layers.2.bias"].__setitem__(3, np.inf), "NaN or infinite"),
        (lambda t, i: t.update({"layers.0.bias": np.zeros(16, np.int64)}), "int64"),
    ],
)
def test_bad_model_files_are_clear_errors(tmp_path, net, change, message):
    tensors, info = good_parts(net)
    change(tensors, info)
    path = tmp_path / "bad.safetensors"
    write(path, tensors, info)
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_file_without_metadata(tmp_path, net):
    tensors, _ = good_parts(net)
    write(tmp_path / "m.safetensors", tensors, None)
    with pytest.raises(ModelFileError, match="without 'digitnet' metadata"):
        load(tmp_path / "m.safetensors")


def test_metadata_not_json(tmp_path, net):
    tensors, _ = good_parts(net)
    save_file(tensors, str(tmp_path / "m.safetensors"), metadata={"digitnet": "{nope"})
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load(tmp_path / "m.safetensors")


@pytest.mark.parametrize("cut", [0, 4, 8, 100, -1, -1000])
def test_truncated_files(saved, cut):
    data = saved.read_bytes()
    saved.write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        load(saved)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(100),
        struct.pack("<Q", 2**62) + b"{}",
        struct.pack("<Q", 10) + b"not json!!",
        struct.pack("<Q", 2) + b"[]",
    ],
)
def test_corrupt_files(tmp_path, content):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelFileError, match="cannot open"):
        load(tmp_path / "nothing.safetensors")
    with pytest.raises(ModelFileError, match="is a directory"):
        load(tmp_path)


def test_save_is_atomic(tmp_path, saved, net, monkeypatch):
    """A write that fails midway leaves the old file whole and no temporary file."""
    before = saved.read_bytes()

    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(KeyboardInterrupt):
        save(saved, Network(rng=np.random.default_rng(9)))
    assert saved.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_atomic_write_replaces_whole(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, b"one")
    atomic_write(path, b"two two")
    assert path.read_bytes() == b"two two"


def test_save_to_missing_folder(tmp_path, net):
    with pytest.raises(OutputError, match="does not exist"):
        save(tmp_path / "no" / "m.safetensors", net)
