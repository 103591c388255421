"""How it learns: one example's nudges against finite differences of the cost and
against PyTorch autograd, a step that is exactly θ − lr·∇C, mini-batches against the
whole set, the landscape's plane and grid, bad input refused, and the figures."""

import io

import numpy as np
import pytest

from digitnet.inspect import landscape as land
from digitnet.inspect import learning, learning_plots
from digitnet.learn.activations import LOSSES
from digitnet.learn.knockout import forward
from digitnet.learn.network import Network

#: (hidden activation, output, loss): every output-loss pair and every activation.
CASES = [
    ("sigmoid", "softmax", "cross-entropy"),
    ("sigmoid", "sigmoid", "quadratic"),
    ("relu", "softmax", "quadratic"),
    ("tanh", "sigmoid", "cross-entropy"),
]
H = 1e-6  # central differences in float64: error ~H² f''' + ε/H ≈ 1e-10, far below 1e-4


def network(activation="sigmoid", output="softmax", dtype=np.float64, seed=3) -> Network:
    return Network(activation=activation, output=output, rng=np.random.default_rng(seed),
                   dtype=dtype)  # fmt: skip


@pytest.fixture(scope="module")
def x(mnist):
    """A training 5 with a faint wash, so that every pixel's weights get a gradient."""
    return np.clip(mnist.train_images[0] / 255 + 0.02, 0, 1)


def cost_from(net: Network, layer: int, value: np.ndarray, label: int, loss: str) -> float:
    """C as a function of layer ``layer``'s activations ``value`` = a_l (1, n_l), the
    network run on from there (layer 0: the input)."""
    rule = LOSSES[(loss, net.output_name)]
    y = np.eye(net.sizes[-1])[[label]]
    run = forward(net, value, start=layer)
    return rule.value(run.z[-1], run.a[-1], y)


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(ours - reference) / np.linalg.norm(reference))


def numeric_gradient(C, v: np.ndarray) -> np.ndarray:
    """(C(v + h e_i) − C(v − h e_i)) / 2h for every entry of v (1, n) or (n,)."""
    out = np.zeros(v.size)
    flat = v.reshape(-1)
    for i in range(v.size):
        keep = flat[i]
        flat[i] = keep + H
        up = C(v)
        flat[i] = keep - H
        down = C(v)
        flat[i] = keep
        out[i] = (up - down) / (2 * H)
    return out


@pytest.mark.parametrize("activation, output, loss", CASES)
def test_every_array_matches_finite_differences(x, activation, output, loss):
    net, label = network(activation, output), 5
    w = learning.wishes(net, x, label, loss)
    run = forward(net, x)
    y = np.eye(10)[[label]]
    rule, L = LOSSES[(loss, output)], len(net.W)
    assert w.cost == pytest.approx(rule.value(run.z[-1], run.a[-1], y), rel=1e-12)
    for l in range(1, L + 1):  # deltas: −∂C/∂z_l, through a_l = f(z_l) then the rest
        squash = net.output if l == L else net.activation.f

        def C(z, l=l, squash=squash):
            if l == L:
                return rule.value(z, squash(z), y)
            return cost_from(net, l, squash(z), label, loss)

        numeric = -numeric_gradient(C, run.z[l].copy())
        assert relative_error(w.deltas[l - 1], numeric) < 1e-4, f"deltas of layer {l}"
    for l in range(1, L):  # wants: −∂C/∂a_l for the hidden layers
        a = run.a[l].copy()
        numeric = -numeric_gradient(lambda a, l=l: cost_from(net, l, a, label, loss), a)
        assert relative_error(w.wants[l - 1], numeric) < 1e-4, f"wants of layer {l}"
    # Every weight and bias (every 7th outside the first case, to keep the test quick).
    every = 1 if (activation, output) == ("sigmoid", "softmax") else 7
    chosen = np.arange(0, net.params.size, every)
    probe = net.copy()

    def C_of(v):
        probe.params[chosen] = v
        return cost_from(probe, 0, x[None], label, loss)

    numeric = -numeric_gradient(C_of, net.params[chosen].copy())
    ours = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(
        w.weight_nudges, w.deltas, strict=True)])[chosen]  # fmt: skip
    assert relative_error(ours, numeric) < 1e-4
    np.testing.assert_allclose(ours, numeric, rtol=1e-4, atol=1e-6 * np.abs(numeric).max())


def test_softmax_cross_entropy_deltas_are_y_minus_a_and_shapes_follow_the_network(x):
    net = network()
    w = learning.wishes(net, x, 7, "cross-entropy")
    a = net.forward(x)
    np.testing.assert_allclose(w.deltas[-1], np.eye(10)[7] - a, atol=1e-15)
    assert [d.shape for d in w.deltas] == [(16,), (16,), (10,)]
    assert [v.shape for v in w.wants] == [(16,), (16,)]
    assert [v.shape for v in w.weight_nudges] == [W.shape for W in net.W]
    np.testing.assert_allclose(w.wants[0], net.W[1].T @ w.deltas[1])
    assert w.digit == int(np.argmax(a)) and w.probabilities == pytest.approx(a.tolist())


def test_top_lists_the_largest_weight_nudges_in_api_neuron_numbering(x):
    net = network()
    w = learning.wishes(net, x, 2, "cross-entropy")
    assert len(w.top) == learning.TOP
    sizes = [abs(t["nudge"]) for t in w.top]
    assert sizes == sorted(sizes, reverse=True)
    for t in w.top:
        assert t["nudge"] == w.weight_nudges[t["layer"] - 1][t["to"], t["from"]]
    every = np.sort(np.abs(np.concatenate([v.ravel() for v in w.weight_nudges])))[::-1]
    assert sizes == pytest.approx(every[: learning.TOP].tolist())


@pytest.mark.parametrize("activation, output, loss", CASES)
def test_nudges_match_pytorch_autograd(x, activation, output, loss):
    torch = pytest.importorskip("torch")
    net, label = network(activation, output, np.float32), 3
    w = learning.wishes(net, x, label, loss)
    act = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}[activation]
    Ws = [torch.tensor(W, requires_grad=True) for W in net.W]
    bs = [torch.tensor(b, requires_grad=True) for b in net.b]
    a, zs, acts = torch.tensor(x[None], dtype=torch.float32), [], []
    for l, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        z = a @ W.T + b
        z.retain_grad()
        zs.append(z)
        a = act(z) if l < len(Ws) - 1 else z
        if l < len(Ws) - 1:
            a.retain_grad()
            acts.append(a)
    y = torch.nn.functional.one_hot(torch.tensor([label]), 10).float()
    out = torch.softmax(z, dim=1) if output == "softmax" else torch.sigmoid(z)
    if loss == "quadratic":
        cost = 0.5 * ((out - y) ** 2).sum()
    elif output == "softmax":
        cost = torch.nn.functional.cross_entropy(z, torch.tensor([label]))
    else:
        cost = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum")
    cost.backward()
    # The parity tests' tolerance: float32 rounding (ε ≈ 6e-8) over sums of up to 784
    # terms, in two different orders of summation, stays orders of magnitude below 1e-4
    # relative to the whole array.
    assert w.cost == pytest.approx(cost.item(), rel=1e-5)
    pairs = [(w.deltas, zs), (w.wants, acts), (w.weight_nudges, [W for W in Ws])]
    for ours, theirs in pairs:
        for o, t in zip(ours, theirs, strict=True):
            assert relative_error(o, -t.grad.numpy().reshape(o.shape)) < 1e-4


def test_a_step_is_exactly_theta_minus_lr_gradient_and_steps_chain(x):
    net = network(dtype=np.float32)
    before = net.params.copy()
    w = learning.wishes(net, x, 5, "cross-entropy")
    first = learning.step(net, x, 5, "cross-entropy", lr=0.5)
    np.testing.assert_array_equal(net.params, before)  # the given network is untouched
    np.testing.assert_array_equal(first.network.params, before - 0.5 * w.grad)
    assert first.cost_before == w.cost and first.cost_after < first.cost_before
    w2 = learning.wishes(first.network, x, 5, "cross-entropy")
    assert first.cost_after == pytest.approx(w2.cost, rel=1e-6)
    second = learning.step(first.network, x, 5, "cross-entropy", lr=0.5)
    np.testing.assert_array_equal(second.network.params, first.network.params - 0.5 * w2.grad)
    assert second.cost_after < second.cost_before == pytest.approx(first.cost_after, rel=1e-6)
    assert second.digit_after == int(np.argmax(second.probabilities_after))


def test_the_full_gradient_is_the_mean_of_per_example_gradients(mnist, monkeypatch):
    monkeypatch.setattr(learning, "CHUNK", 16)  # three chunks, the last one short
    net = network("tanh", "sigmoid")
    images, labels = mnist.train_images[:40], mnist.train_labels[:40]
    cost, grad = learning.mean_gradient(net, images, labels, "cross-entropy")
    each = [learning.wishes(net, images[i] / 255, int(labels[i]), "cross-entropy") for i in
            range(40)]  # fmt: skip
    np.testing.assert_allclose(grad, np.mean([w.grad for w in each], axis=0), rtol=1e-10,
                               atol=1e-14)  # fmt: skip
    assert cost == pytest.approx(np.mean([w.cost for w in each]), rel=1e-12)


def test_minibatches_draw_without_replacement_and_a_batch_of_all_points_the_full_way(mnist):
    net = network(dtype=np.float32)
    cache = learning.Cache(mnist.train_images[:300], mnist.train_labels[:300])
    result = learning.minibatches(net, cache, "cross-entropy", [1, 30, 300], seed=4)
    again = learning.minibatches(net, cache, "cross-entropy", np.array([1, 30, 300]), seed=4)
    assert result.to_json() == again.to_json()  # one seeded generator
    full_cost, full = cache.full(net, "cross-entropy")
    assert result.full == {"cost": full_cost, "norm": pytest.approx(np.linalg.norm(full))}
    for batch in result.batches:
        rows = np.array(batch["indices"])
        assert len(set(rows.tolist())) == batch["size"] == len(rows) and rows.max() < 300
        cost, g = learning.mean_gradient(net, cache.images, cache.labels, "cross-entropy", rows)
        assert batch["cost"] == cost and batch["norm"] == pytest.approx(np.linalg.norm(g))
    whole = result.batches[-1]
    assert sorted(whole["indices"]) == list(range(300))
    assert whole["cosine"] == pytest.approx(1, abs=1e-6)
    assert whole["cost"] == pytest.approx(full_cost, rel=1e-5)
    assert abs(result.batches[0]["cosine"]) < 0.999  # one image is not the whole set
    assert cache.full(net, "cross-entropy") is cache.full(net, "cross-entropy")  # kept


def test_the_cache_tells_networks_apart(mnist):
    cache = learning.Cache(mnist.train_images[:50], mnist.train_labels[:50])
    net = network()
    first = cache.full(net, "cross-entropy")[1]
    net.b[0][0] += 1  # changed in place: a new key, a new answer
    assert not np.array_equal(cache.full(net, "cross-entropy")[1], first)


@pytest.mark.parametrize(
    "pixels, label, loss, match",
    [
        (np.zeros(784), 10, "cross-entropy", "label must be a digit 0-9, got 10"),
        (np.zeros(784), -1, "cross-entropy", "label must be a digit 0-9, got -1"),
        (np.zeros(784), True, "cross-entropy", "label must be a digit 0-9, got True"),
        (np.zeros(783), 1, "cross-entropy", "784 numbers in .0, 1., got 783"),
        (np.full(784, 1.5), 1, "cross-entropy", r"must lie in \[0, 1\], got values from 1.5"),
        (np.full(784, np.nan), 1, "cross-entropy", "finite numbers in .0, 1., got NaN"),
        ("a picture", 1, "cross-entropy", "784 numbers in .0, 1., got str"),
        (np.zeros(784), 1, "hinge", "unknown loss/output pair"),
    ],
)
def test_bad_examples_are_refused_in_one_line(pixels, label, loss, match):
    with pytest.raises(ValueError, match=match) as info:
        learning.wishes(network(), pixels, label, loss)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("lr", [0, -1.0, float("inf"), float("nan"), "1"])
def test_a_step_needs_a_positive_finite_learning_rate(x, lr):
    with pytest.raises(ValueError, match="lr must be a positive"):
        learning.step(network(), x, 1, "cross-entropy", lr=lr)


def test_bad_batches_and_landscapes_are_refused(mnist):
    net = network(dtype=np.float32)
    cache = learning.Cache(mnist.train_images[:100], mnist.train_labels[:100])
    bad = [([], "non-empty list"), ([0], "1-100, got 0"), ([101], "1-100, got 101"),
           ("12", "non-empty list"), ([2.5], "whole number 1-100, got 2.5")]  # fmt: skip
    for sizes, match in bad:
        with pytest.raises(ValueError, match=match):
            learning.minibatches(net, cache, "cross-entropy", sizes)
    odd = "size must be an odd whole number 5-41, got "
    for kwargs, match in [({"size": 6}, odd + "6"), ({"size": 43}, odd + "43"), ({"size": 3}, odd),
                          ({"span": 0.0}, "span must be a positive"), ({"seed": -1}, "seed")]:
        with pytest.raises(ValueError, match=match):
            land.landscape(net, cache, "cross-entropy", **kwargs)
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, 784\), got float64"):
        learning.Cache(mnist.train_images[:5] / 255, mnist.train_labels[:5]).full(net, "quadratic")


def test_api_order_is_every_weight_then_every_bias():
    net = network()
    expected = np.concatenate([W.ravel() for W in net.W] + list(net.b))
    np.testing.assert_array_equal(learning.api_order(net, net.params), expected)


def test_directions_are_orthogonal_filter_normalised_and_down_the_gradient(mnist):
    net = network()
    _, grad = learning.mean_gradient(net, mnist.train_images[:100], mnist.train_labels[:100],
                                     "cross-entropy")  # fmt: skip
    d1, d2 = land.directions(net, grad, np.random.default_rng(0))
    assert abs(d1 @ d2) < 1e-10 * np.linalg.norm(d1) * np.linalg.norm(d2)
    theta, g = land.filters(net, net.params), land.filters(net, grad)
    for d in (d1, d2):  # each neuron's weights and bias moved by as much as they hold
        rows = land.filters(net, d)
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), np.linalg.norm(theta, axis=1))
    rows = land.filters(net, d1)
    cosines = -np.sum(rows * g, axis=1) / (np.linalg.norm(rows, axis=1) * np.linalg.norm(g, axis=1))
    np.testing.assert_allclose(cosines, 1)  # every filter of d₁ points down its gradient
    np.testing.assert_array_equal(land.unfilter(net, theta), net.params)


def test_the_landscape_centre_is_the_networks_cost_and_every_point_its_own(mnist):
    net = network(dtype=np.float32)
    cache = learning.Cache(mnist.train_images[:200], mnist.train_labels[:200])
    path = [net.params.copy()]
    result = land.landscape(net, cache, "cross-entropy", size=5, span=0.5, seed=1)
    cost, grad = learning.mean_gradient(net, cache.images, cache.labels, "cross-entropy")
    assert result.cost.shape == (5, 5) and result.alphas.tolist() == [-0.5, -0.25, 0, 0.25, 0.5]
    assert result.cost[2, 2] == pytest.approx(cost, rel=1e-6)
    d1, d2 = land.directions(net, grad, np.random.default_rng(1))
    for d, theirs in zip((d1, d2), result.directions, strict=True):
        np.testing.assert_allclose(learning.api_order(net, d), theirs)
    for i, j in [(0, 4), (3, 1)]:  # rows β, columns α, as the network itself computes
        moved = net.copy()
        moved.params[...] = net.params + result.alphas[j] * d1 + result.betas[i] * d2
        here = learning.mean_gradient(moved, cache.images, cache.labels, "cross-entropy")[0]
        assert result.cost[i, j] == pytest.approx(here, rel=1e-4)
    assert result.cost[2, 3] < result.cost[2, 2] < result.cost[2, 1]  # downhill along d₁
    path = [net.params + 0.3 * d1 - 0.2 * d2, net.params.copy()]
    walked = land.landscape(net, cache, "cross-entropy", size=5, span=0.5, seed=1, path=path)
    np.testing.assert_allclose(walked.path, [[0.3, -0.2], [0, 0]], atol=1e-5)
    np.testing.assert_array_equal(walked.cost, result.cost)  # kept, not recomputed
    with pytest.raises(ValueError, match="13002 parameters, got"):
        land.landscape(net, cache, "cross-entropy", size=5, span=0.5, seed=1, path=[[1.0]])


def test_figures_draw_the_arrays(x, mnist):
    net = network(dtype=np.float32)
    w = learning.wishes(net, x, 5, "cross-entropy")
    fig = learning_plots.gradient_figure(x, w)
    bars = [ax for ax in fig.axes if ax.patches]
    heights = [[p.get_height() for p in ax.patches] for ax in bars]
    expected = [w.deltas[-1], *w.wants]
    for ours, theirs in zip(heights, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    nudges = [ax.images[0] for ax in fig.axes if ax.images][1:]  # after the picture
    assert len(nudges) == 16
    s = np.abs(w.weight_nudges[0]).max()
    for j, image in enumerate(nudges):
        assert image.get_clim() == pytest.approx((-s, s))
        np.testing.assert_allclose(image.get_array(), w.weight_nudges[0][j].reshape(28, 28))
    fig.savefig(io.BytesIO(), format="png")

    cache = learning.Cache(mnist.train_images[:100], mnist.train_labels[:100])
    batches = learning.minibatches(net, cache, "cross-entropy", [1, 10, 100], seed=0)
    fig = learning_plots.minibatch_figure(batches)
    cosine_line = fig.axes[0].lines[0]
    assert cosine_line.get_xdata().tolist() == [1, 10, 100]
    assert cosine_line.get_ydata() == pytest.approx([b["cosine"] for b in batches.batches])
    assert fig.axes[0].get_xscale() == "log"

    result = land.landscape(net, cache, "cross-entropy", size=5, seed=0, path=[net.params])
    fig = learning_plots.landscape_figure(result)
    star, walk = fig.axes[0].lines[:2]
    assert star.get_xydata().tolist() == [[0, 0]]
    np.testing.assert_allclose(walk.get_xydata(), result.path)
    fig.savefig(io.BytesIO(), format="png")
