"""Parity with PyTorch on what must agree: the gradient of the same weights on the same
mini-batch, and each optimiser's steps on the same gradients.  Together they are one
training step; whole epochs are not compared, because float32 rounding differs between
any two implementations and training amplifies it (Adam turns a gradient of 1e-8,
which is rounding noise, into a full step of size η)."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed (pip install torch==2.13.0; CI installs it)"
)

from digitnet.learn.network import Network  # noqa: E402
from digitnet.train import OPTIMIZERS, one_hot  # noqa: E402

EPS = float(np.finfo(np.float32).eps)  # 2⁻²³ ≈ 1.19e-7; one rounding errs by at most EPS/2

# The gradient.  Each entry of ∂C/∂W is a chain of sums, each of which float32 computes
# to within (terms) · EPS/2 of the exact sum, relative to the sum of the terms' sizes
# (Higham, "Accuracy and Stability of Numerical Algorithms", 3.1).  The longest chain
# is layer 1's 784-term sum forward, then sums of 16, 16 and 10 terms forward and 10, 16
# and 16 back, then the 32-term sum over the batch: 900 terms.  Both sides err so, in
# any order their libraries choose: at most 2 · 900 · EPS/2 = 900 · EPS apart.
GRADIENT_TOLERANCE = 1000 * EPS  # ≈ 1.2e-4, relative, per layer's weights and biases

# The optimisers' steps.  From the same gradient, one step computes the update
# η·r in about 10 roundings on each side (Adam: m and v, their bias corrections, √, ε,
# the quotient, η; SGD: decay, g, η) and subtracts it from θ in one more.  Adam's m
# carries its rounding into later steps, discounted by β1 = 0.9 (at most 1/(1 - β1) =
# 10 steps' worth), and its ratio |r| = |m̂|/√v̂ is at most (1 - β1)/√(1 - β2) ≈ 3.2.
# So after k steps: |θ - θ'| ≤ k · (EPS · |θ| + 64 · EPS · η).
STEPS = 20

CASES = [
    ("sigmoid", "quadratic", "sigmoid"),
    ("sigmoid", "cross-entropy", "softmax"),
    ("relu", "quadratic", "sigmoid"),
    ("relu", "cross-entropy", "softmax"),
]


def torch_model(net: Network):
    act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[net.activation_name]
    layers = []
    for i, (W, b) in enumerate(zip(net.W, net.b, strict=True)):
        linear = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.copy()))
            linear.bias.copy_(torch.from_numpy(b.copy()))
        layers += [linear] if i == len(net.W) - 1 else [linear, act()]
    return torch.nn.Sequential(*layers)


def torch_cost(z, y, labels, loss, output):
    if loss == "cross-entropy":
        return torch.nn.functional.cross_entropy(z, labels)
    a = torch.sigmoid(z) if output == "sigmoid" else torch.softmax(z, dim=1)
    return 0.5 * ((a - y) ** 2).sum(dim=1).mean()


def batch(mnist, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n training images as floats in [0, 1] (n, 784) and their labels (n,)."""
    rows = np.random.default_rng(seed).choice(len(mnist.train_images), n, replace=False)
    return mnist.train_images[rows].astype(np.float32) / 255, mnist.train_labels[rows]


@pytest.mark.parametrize("activation, loss, output", CASES)
def test_the_gradient_of_the_same_weights_matches_pytorch(mnist, activation, loss, output):
    torch.set_num_threads(1)
    net = Network(activation=activation, output=output, rng=np.random.default_rng(1))
    model = torch_model(net)
    for seed in range(3):  # three mini-batches of 32, the default batch size
        x, labels = batch(mnist, 32, seed)
        y = one_hot(labels, 10)
        cost, _ = net.backprop(x, y, loss)
        model.zero_grad()
        theirs = torch_cost(
            model(torch.from_numpy(x)),
            torch.from_numpy(y),
            torch.from_numpy(labels.astype(np.int64)),
            loss,
            output,
        )
        theirs.backward()
        assert cost == pytest.approx(theirs.item(), rel=GRADIENT_TOLERANCE)
        for l, linear in enumerate(model[::2]):
            for ours, param in ((net.dW[l], linear.weight), (net.db[l], linear.bias)):
                expected = param.grad.numpy()
                error = np.linalg.norm(ours - expected) / np.linalg.norm(expected)
                assert error < GRADIENT_TOLERANCE, f"layer {l}: relative error {error:.1e}"


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_steps_on_the_same_gradients_match_pytorch(mnist, optimizer):
    """``STEPS`` steps with L2 weight decay on the weights (not the biases), each on
    the gradient our network computes on a real mini-batch, handed to both."""
    torch.set_num_threads(1)
    lr, decay = {"sgd": 0.5, "momentum": 0.05, "adam": 0.01}[optimizer], 1e-4
    net = Network(rng=np.random.default_rng(1))
    model, start = torch_model(net), net.params.copy()
    linears = list(model[::2])
    groups = [
        {"params": [m.weight for m in linears], "weight_decay": decay},
        {"params": [m.bias for m in linears], "weight_decay": 0.0},
    ]
    theirs = {
        "sgd": lambda: torch.optim.SGD(groups, lr=lr),
        "momentum": lambda: torch.optim.SGD(groups, lr=lr, momentum=0.9),
        "adam": lambda: torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8),
    }[optimizer]()
    ours = OPTIMIZERS[optimizer](net.params.size, np.float32, momentum=0.9)
    mask = net.weight_mask() * np.float32(decay)
    for step in range(STEPS):
        x, labels = batch(mnist, 32, step)
        net.backprop(x, one_hot(labels, 10), "cross-entropy")
        for l, linear in enumerate(linears):
            linear.weight.grad = torch.from_numpy(net.dW[l].copy())
            linear.bias.grad = torch.from_numpy(net.db[l].copy())
        ours.step(net.params, net.grad, lr, mask)
        theirs.step()
    assert ours.steps == STEPS
    for l, linear in enumerate(linears):
        for mine, param in ((net.W[l], linear.weight), (net.b[l], linear.bias)):
            expected = param.detach().numpy()
            np.testing.assert_allclose(
                mine, expected, rtol=STEPS * EPS, atol=STEPS * 64 * EPS * lr, err_msg=f"layer {l}"
            )
    assert np.abs(net.params - start).max() > 100 * STEPS * 64 * EPS * lr  # they moved


def test_readme_pytorch_snippet_loads_our_model(trained, mnist, tmp_path, monkeypatch):
    """The README's five lines load a model file into PyTorch, which then agrees with
    digitnet on every test image."""
    net, path = trained
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = readme.split("In PyTorch:\n\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "model.safetensors").write_bytes(path.read_bytes())
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(snippet, scope)
    x = torch.from_numpy(mnist.test_images.astype(np.float32) / 255)
    with torch.inference_mode():
        theirs = scope["net"](x).argmax(-1).numpy()
    np.testing.assert_array_equal(theirs, net.predict(mnist.test_images))
