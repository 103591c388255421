"""Shared fixtures: the MNIST copy that ships with the package, loaded once."""

from pathlib import Path

import pytest

from digitnet.data import load_mnist

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist():
    return load_mnist()
