"""The record of a run is the library's: a model saved from Python with its history
works with every command, as one saved by ``digitnet train`` does."""

import json

import numpy as np
from PIL import Image

from conftest import cli
from digitnet.config import TrainConfig, record
from digitnet.files.modelfile import load, save
from digitnet.train import train_network


def test_the_readmes_import_line_gives_the_librarys_own_objects():
    """``from digitnet import Network, TrainConfig, load, load_mnist, save,
    train_network``: the public names are the library's functions and classes, not
    copies that could drift from them."""
    import digitnet
    from digitnet import train
    from digitnet.files import data, modelfile
    from digitnet.learn import network

    public = (digitnet.Network, digitnet.TrainConfig, digitnet.load, digitnet.load_mnist,
              digitnet.save, digitnet.train_network)  # fmt: skip
    assert public == (network.Network, TrainConfig, modelfile.load, data.load_mnist,
                      modelfile.save, train.train_network)  # fmt: skip


def test_a_model_saved_from_python_works_with_every_command(mnist, tmp_path):
    config = TrainConfig(epochs=2, validation=500, kernel="numpy", seed=3)
    net, history = train_network(mnist.train_images[:3000], mnist.train_labels[:3000], config)
    path = tmp_path / "mine.safetensors"
    save(path, net, record(config, history))
    picture = tmp_path / "seven.png"
    Image.fromarray(mnist.test_images[0].reshape(28, 28)).save(picture)

    info = cli("info", path, "--json")
    assert info.returncode == 0, info.stderr
    stored = json.loads(info.stdout)
    assert stored["seed"] == 3 and stored["config"]["epochs"] == 2
    assert [e["epoch"] for e in stored["history"]["epochs"]] == [1, 2]
    for args in (
        ["info", path],
        ["evaluate", path],
        ["predict", path, picture],
        ["plot", "curves", path, "--out", tmp_path / "curves.png"],
        ["plot", "weights", path, "--out", tmp_path / "weights.png"],
    ):
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
    assert "2 epochs" in cli("info", path).stdout
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_records_are_stored_as_their_dicts(mnist, tmp_path):
    config = TrainConfig(epochs=1, validation=500, kernel="numpy")
    net, history = train_network(mnist.train_images[:2000], mnist.train_labels[:2000], config)
    save(tmp_path / "m.safetensors", net, {"config": config, "history": history})
    info = load(tmp_path / "m.safetensors").info
    assert info["config"] == config.to_dict() and info["history"] == history.to_dict()
    assert TrainConfig.from_dict(info["config"]) == config
    np.testing.assert_array_equal(load(tmp_path / "m.safetensors").network.params, net.params)


def test_the_explorer_imports_as_it_did_before_the_subpackages():
    """``from digitnet import explore``, as the README once wrote it, gives the module."""
    from digitnet import explore
    from digitnet.inspect import explore as home

    assert explore is home
