"""Numbers at the edges: saturated sigmoids, huge logits, large weights.  No NaN, no
overflow warning (warnings are errors in this test suite)."""

import numpy as np
import pytest

from digitnet.learn.activations import (
    LOSSES,
    cross_entropy_value_sigmoid,
    cross_entropy_value_softmax,
    log_sigmoid,
    log_softmax,
    sigmoid,
    softmax,
)
from digitnet.learn.network import Network
from digitnet.train import one_hot

HUGE = np.array([[-1e30, -1e4, -100.0, 0.0, 100.0, 1e4, 1e30]], dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_overflow(dtype):
    a = sigmoid(HUGE.astype(dtype))
    assert np.isfinite(a).all() and a.dtype == dtype
    # below z = -80, e^(-z) is capped: σ is 1.8e-35 there, as good as 0 next to any
    # other activation, and no overflow happens on the way
    assert 0 <= a[0, 0] < 2e-35 and a[0, 1] == a[0, 2] == a[0, 0]
    assert a[0, -1] == 1 and a[0, 3] == 0.5
    np.testing.assert_allclose(log_sigmoid(np.array([-1e4, 0, 1e4])), [-1e4, -np.log(2), 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_log_softmax_of_huge_logits(dtype):
    z = np.array([[1e30, 0, -1e30], [1000, 1000, 999], [-5e4, -5e4, -5e4]], dtype=dtype)
    p = softmax(z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(p[0], [1, 0, 0])
    np.testing.assert_allclose(p[2], [1 / 3] * 3, rtol=1e-6)
    logp = log_softmax(z)
    assert np.isfinite(logp[1:]).all() and logp[0, 0] == 0


def test_cross_entropy_of_confidently_wrong_outputs_is_large_and_finite():
    z = np.array([[1e4, -1e4]], dtype=np.float64)
    y = np.array([[0.0, 1.0]])
    assert np.isfinite(cross_entropy_value_sigmoid(z, sigmoid(z), y))
    assert cross_entropy_value_sigmoid(z, sigmoid(z), y) == pytest.approx(2e4)
    z32 = z.astype(np.float32)
    value = cross_entropy_value_softmax(z32, softmax(z32), y.astype(np.float32))
    assert value == pytest.approx(2e4)  # log a from z: exact, where a itself underflows to 0


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_large_weights_give_no_nan(activation, output):
    net = Network((784, 16, 16, 10), activation, output, rng=np.random.default_rng(0))
    net.params *= 1e4  # every neuron saturated
    x = np.random.default_rng(1).random((50, 784), dtype=np.float32)
    out = net.forward(x)
    assert np.isfinite(out).all()
    for loss in ("quadratic", "cross-entropy"):
        cost, _ = net.backprop(x, one_hot(np.arange(50) % 10, 10), LOSSES[(loss, output)])
        assert np.isfinite(cost) and np.isfinite(net.grad).all()
