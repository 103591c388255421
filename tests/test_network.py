"""The network: shapes, the forward pass, backpropagation against finite differences."""

import itertools

import numpy as np
import pytest

from digitnet.learn.activations import ACTIVATIONS, LOSSES, OUTPUTS
from digitnet.learn.network import Network, count_parameters
from digitnet.train import one_hot

COMBINATIONS = list(itertools.product(ACTIVATIONS, [loss for loss, _ in LOSSES], OUTPUTS))
COMBINATIONS = sorted(set(COMBINATIONS))


def test_default_network_is_the_videos():
    net = Network()
    assert net.sizes == (784, 16, 16, 10)
    assert net.n_parameters == 13_002 == count_parameters(net.sizes)
    assert [W.shape for W in net.W] == [(16, 784), (16, 16), (10, 16)]
    assert [b.shape for b in net.b] == [(16,), (16,), (10,)]
    # W and b are views into the one flat parameter vector
    net.W[1][2, 3] = 7.0
    assert 7.0 in net.params


def test_shapes_of_forward_trace_predict():
    net = Network(rng=np.random.default_rng(1))
    x = np.random.default_rng(2).random((5, 784), dtype=np.float32)
    assert net.forward(x).shape == (5, 10)
    assert net.forward(x[0]).shape == (10,)
    np.testing.assert_allclose(net.forward(x).sum(axis=1), 1, rtol=1e-5)  # softmax
    layers = net.trace(x)
    assert [a.shape for a in layers] == [(5, 784), (5, 16), (5, 16), (5, 10)]
    np.testing.assert_array_equal(layers[-1], net.forward(x))
    assert [a.shape for a in net.trace(x[0])] == [(784,), (16,), (16,), (10,)]
    assert net.predict(x).shape == (5,)
    assert net.predict(x[3]) == net.predict(x)[3]
    # uint8 images are pixels 0-255, scaled to [0, 1]
    img = (x.reshape(5, 28, 28) * 255).round().astype(np.uint8)
    np.testing.assert_allclose(net.forward(img), net.forward(img.reshape(5, -1) / 255), atol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, 783)), "expected input of shape"),
        (np.zeros((2, 3, 784)), "expected input of shape"),
        (np.full(784, np.nan), "NaN"),
        (np.array(["a"] * 784), "numbers"),
    ],
)
def test_bad_input_is_a_clear_error(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Network().forward(bad)


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Network(activation="swish")
    with pytest.raises(ValueError, match="unknown output"):
        Network(output="linear")
    with pytest.raises(ValueError, match="at least one neuron"):
        Network(sizes=(784, 0, 10))
    with pytest.raises(ValueError, match="input and an output"):
        Network(sizes=(784,))


def test_tiny_network_by_hand():
    """A 2-2-1 sigmoid network whose every number can be checked on paper.

    Layer 1: W = [[1, -1], [0.5, 0.5]], b = [0, -1], x = [1, 1]:
      z1 = [0, 0], a1 = [σ(0), σ(0)] = [0.5, 0.5].
    Layer 2: W = [[2, -2]], b = [0.5]: z2 = 2·0.5 - 2·0.5 + 0.5 = 0.5, a2 = σ(0.5).
    Quadratic cost with y = 1: C = ½(σ(0.5) - 1)².
      δ2 = (a2 - 1) σ'(0.5);  ∂C/∂W2 = δ2 a1 = [δ2/2, δ2/2];  ∂C/∂b2 = δ2.
      δ1 = W2ᵀ δ2 ⊙ σ'(z1) = [2δ2, -2δ2] · ¼ = [δ2/2, -δ2/2];  ∂C/∂W1 = δ1 xᵀ.
    """
    net = Network.from_arrays(
        [np.array([[1.0, -1.0], [0.5, 0.5]]), np.array([[2.0, -2.0]])],
        [np.array([0.0, -1.0]), np.array([0.5])],
        activation="sigmoid",
        output="sigmoid",
    )
    x = np.array([[1.0, 1.0]])
    s = 1 / (1 + np.exp(-0.5))  # σ(0.5) = 0.6224593...
    layers = net.trace(x)
    np.testing.assert_allclose(layers[1], [[0.5, 0.5]])
    np.testing.assert_allclose(layers[2], [[s]])
    cost, _ = net.backprop(x, np.array([[1.0]]), "quadratic")
    assert cost == pytest.approx(0.5 * (s - 1) ** 2)
    d2 = (s - 1) * s * (1 - s)
    np.testing.assert_allclose(net.dW[1], [[d2 / 2, d2 / 2]])
    np.testing.assert_allclose(net.db[1], [d2])
    np.testing.assert_allclose(net.dW[0], [[d2 / 2, d2 / 2], [-d2 / 2, -d2 / 2]])
    np.testing.assert_allclose(net.db[0], [d2 / 2, -d2 / 2])
    assert cost == pytest.approx(0.0713, abs=1e-4)  # ½ (0.62246 - 1)² = ½ · 0.14254


@pytest.mark.parametrize("activation, loss, output", COMBINATIONS)
def test_backprop_matches_finite_differences(activation, loss, output):
    """∂C/∂θ from backpropagation equals (C(θ + h) - C(θ - h)) / 2h in float64."""
    rng = np.random.default_rng(3)
    net = Network((6, 5, 4, 3), activation, output, rng=rng, dtype=np.float64)
    net.params += rng.normal(0, 0.1, net.params.size)  # biases away from zero
    x = rng.random((7, 6))
    y = one_hot(rng.integers(0, 3, 7), 3, np.float64)
    if activation == "relu":  # keep every pre-activation away from ReLU's kink
        for a in net.trace(x)[1:-1]:
            assert np.abs(a[a > 0]).min() > 1e-3
    net.backprop(x, y, loss)
    analytic = net.grad.copy()
    numeric = np.empty_like(analytic)
    h = 1e-6
    for i in range(net.params.size):
        keep = net.params[i]
        net.params[i] = keep + h
        plus, _ = net.backprop(x, y, loss)
        net.params[i] = keep - h
        minus, _ = net.backprop(x, y, loss)
        net.params[i] = keep
        numeric[i] = (plus - minus) / (2 * h)
    error = np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic + numeric)
    assert error < 1e-6, f"relative error {error:.2e}"


def test_fold_input_transform_gives_the_same_function():
    rng = np.random.default_rng(4)
    net = Network((784, 16, 10), rng=rng, dtype=np.float64)
    x = rng.random((9, 784))
    folded = net.fold_input_transform(scale=3.2, shift=-0.4)
    np.testing.assert_allclose(folded.forward(x), net.forward(3.2 * x - 0.4), rtol=1e-10)
    back = folded.fold_input_transform(1 / 3.2, 0.4 / 3.2)
    np.testing.assert_allclose(back.params, net.params, rtol=1e-9, atol=1e-12)
