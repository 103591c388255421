"""The compiled epoch (numba) against the NumPy reference: same equations, same
mini-batches, same shifts, so the same weights to float32 rounding."""

import itertools

import numpy as np
import pytest

from digitnet import kernel
from digitnet.network import Network
from digitnet.train import TrainConfig, TrainingDiverged, fit, seeded_generators, train_network

pytestmark = pytest.mark.skipif(
    not kernel.AVAILABLE, reason="numba is not installed (pip install 'digitnet[fast]')"
)
LR = {"sgd": 0.1, "momentum": 0.02, "adam": 0.003}
COMBINATIONS = list(
    itertools.product(
        ["sigmoid", "relu", "tanh"],
        ["softmax", "sigmoid"],
        ["cross-entropy", "quadratic"],
        sorted(LR),
    )
)


def one_epoch(images, labels, kind, **settings):
    config = TrainConfig(epochs=1, validation=300, kernel=kind, **settings)
    init_rng, data_rng = seeded_generators(config.seed)
    net = Network(config.sizes, config.activation, config.output, rng=init_rng)
    history = fit(net, images, labels, config, data_rng)
    return net, history.epochs[0]


@pytest.mark.parametrize("activation, output, loss, optimizer", COMBINATIONS)
def test_compiled_epoch_matches_numpy(mnist, activation, output, loss, optimizer):
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    settings = dict(
        activation=activation,
        output=output,
        loss=loss,
        optimizer=optimizer,
        lr=LR[optimizer],
        augment=1,
        weight_decay=1e-4,
    )
    reference, ours = one_epoch(images, labels, "numpy", **settings)
    compiled, theirs = one_epoch(images, labels, "compiled", **settings)
    error = np.linalg.norm(compiled.params - reference.params) / np.linalg.norm(reference.params)
    assert error < 1e-4, f"relative error {error:.1e}"
    assert theirs.loss == pytest.approx(ours.loss, rel=1e-4)
    assert theirs.accuracy == pytest.approx(ours.accuracy, abs=2 / 3000)


def test_compiled_same_seed_same_weights(mnist):
    images, labels = mnist.train_images[:5000], mnist.train_labels[:5000]
    config = TrainConfig(epochs=2, kernel="compiled", seed=4, validation=500)
    a, _ = train_network(images, labels, config)
    b, _ = train_network(images, labels, config)
    assert a.params.tobytes() == b.params.tobytes()


def test_compiled_divergence_is_the_same_clear_error(mnist):
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    net = Network(activation="relu", rng=np.random.default_rng(0))
    config = TrainConfig(
        optimizer="sgd",
        lr=1e6,
        loss="quadratic",
        activation="relu",
        epochs=2,
        validation=0,
        kernel="compiled",
    )
    with pytest.raises(TrainingDiverged, match="learning rate 1e\\+06"):
        fit(net, images, labels, config, np.random.default_rng(0))
    assert np.isfinite(net.params).all()


@pytest.mark.parametrize("batch_size", [1, 64, 100, 200])
def test_compiled_epoch_matches_numpy_for_batches_split_across_blas_calls(mnist, batch_size):
    """Batches over 64 rows go to BLAS in blocks whose gradients are summed."""
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    settings = dict(batch_size=batch_size, lr=0.003, weight_decay=1e-4)
    reference, ours = one_epoch(images, labels, "numpy", **settings)
    compiled, theirs = one_epoch(images, labels, "compiled", **settings)
    error = np.linalg.norm(compiled.params - reference.params) / np.linalg.norm(reference.params)
    assert error < 1e-4, f"relative error {error:.1e}"
    assert theirs.loss == pytest.approx(ours.loss, rel=1e-4)


@pytest.mark.parametrize("normalize, augment", [(True, 1), (False, 2), (True, 2)])
def test_compiled_epoch_matches_numpy_with_normalised_inputs_and_longer_moves(
    mnist, normalize, augment
):
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    settings = dict(normalize=normalize, augment=augment, lr=0.003, weight_decay=1e-4)
    reference, ours = one_epoch(images, labels, "numpy", **settings)
    compiled, theirs = one_epoch(images, labels, "compiled", **settings)
    error = np.linalg.norm(compiled.params - reference.params) / np.linalg.norm(reference.params)
    assert error < 1e-4, f"relative error {error:.1e}"
    assert theirs.loss == pytest.approx(ours.loss, rel=1e-4)


def test_compiled_epoch_leaves_subnormal_arithmetic_as_it_was(mnist):
    """The loop flushes subnormal floats to zero while it runs, and only then."""
    tiny = np.float32(1e-38)
    assert tiny * np.float32(0.01) != 0  # a subnormal result, as IEEE 754 says
    one_epoch(mnist.train_images[:500], mnist.train_labels[:500], "compiled")
    assert tiny * np.float32(0.01) != 0
    assert np.float32(1e-40) > 0  # subnormal inputs still read as themselves
