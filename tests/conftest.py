"""Shared fixtures: the MNIST copy that ships with the package, loaded once."""

from pathlib import Path

import pytest

from digitnet.data import load_mnist
from digitnet.modelfile import save
from digitnet.train import TrainConfig, evaluate, train

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist():
    return load_mnist()


@pytest.fixture(scope="session")
def trained(mnist, tmp_path_factory):
    """A default network trained for 10 epochs (about 95.5% on the test set), saved."""
    net, history = train(mnist.train_images, mnist.train_labels, TrainConfig(epochs=10))
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    accuracy = evaluate(net, mnist.test_images, mnist.test_labels).accuracy
    save(path, net, {"history": history.to_dict(), "test_accuracy": accuracy})
    return net, path
