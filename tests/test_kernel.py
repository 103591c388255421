"""The compiled loop: the same source as the NumPy loop, compiled by numba.  Same
mini-batches, same shifts, same equations, so the same weights to float32 rounding;
a new registry entry trains on every loop."""

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from digitnet import activations, kernel
from digitnet.activations import ACTIVATIONS, Activation
from digitnet.config import TrainConfig, TrainingDiverged
from digitnet.network import Network
from digitnet.train import fit, is_compiled, seeded_generators, train_network

pytestmark = pytest.mark.skipif(
    not kernel.AVAILABLE, reason="numba is not installed (pip install 'digitnet[fast]')"
)


def one_epoch(images, labels, kind, **settings):
    config = TrainConfig(epochs=1, validation=300, kernel=kind, **settings)
    init_rng, data_rng = seeded_generators(config.seed)
    net = Network(config.sizes, config.activation, config.output, rng=init_rng)
    history = fit(net, images, labels, config, data_rng)
    return net, history.epochs[0]


def assert_same_epoch(images, labels, **settings):
    reference, ours = one_epoch(images, labels, "numpy", **settings)
    compiled, theirs = one_epoch(images, labels, "compiled", **settings)
    error = np.linalg.norm(compiled.params - reference.params) / np.linalg.norm(reference.params)
    assert error < 1e-4, f"relative error {error:.1e}"
    assert theirs.loss == pytest.approx(ours.loss, rel=1e-4)
    assert theirs.accuracy == pytest.approx(ours.accuracy, abs=2 / len(images))


# Each configuration compiles once (about half a minute): a few that between them use
# every activation, output, cost and optimiser; the NumPy loop trains all 36 pairings
# in test_train.py.
CONFIGURATIONS = [
    dict(lr=0.003, augment=1, weight_decay=1e-4),
    dict(activation="relu", output="sigmoid", loss="quadratic", optimizer="sgd", lr=0.1),
    dict(activation="tanh", output="softmax", loss="quadratic", optimizer="momentum", lr=0.02),
    dict(activation="relu", output="sigmoid", loss="cross-entropy", optimizer="adam", lr=0.003),
]


@pytest.mark.parametrize("settings", CONFIGURATIONS, ids=lambda s: "-".join(map(str, s.values())))
def test_compiled_epoch_matches_numpy(mnist, settings):
    assert_same_epoch(mnist.train_images[:3000], mnist.train_labels[:3000], **settings)


@pytest.mark.parametrize("batch_size, normalize, augment", [(1, False, 1), (100, True, 2)])
def test_compiled_epoch_matches_numpy_for_odd_batches_and_settings(
    mnist, batch_size, normalize, augment
):
    """Batches of 1 and of 100 (3000 is no multiple of 100 after the split), standardised
    inputs and two-pixel moves: the same configuration's compiled loop serves them all."""
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    settings = dict(batch_size=batch_size, normalize=normalize, augment=augment, lr=0.003)
    assert_same_epoch(images, labels, **settings)


def softplus(z):
    """log(1 + e^z), written as every activation is: for a number or an array."""
    return np.maximum(z, activations.ZERO) + np.log1p(np.exp(-np.abs(z)))


def softplus_prime(a):
    """σ(z) from a = softplus(z): 1 - e^(-a)."""
    return activations.ONE - np.exp(-a)


def test_an_activation_added_to_the_registry_trains_on_every_loop(mnist, monkeypatch):
    monkeypatch.setitem(ACTIVATIONS, "softplus", Activation("softplus", softplus, softplus_prime))
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    for loop in ("numpy", "compiled"):
        config = TrainConfig(activation="softplus", epochs=1, validation=500, lr=0.01, kernel=loop)
        net, history = train_network(images, labels, config)
        assert net.activation_name == "softplus"
        assert history.epochs[0].val_accuracy > 0.6, loop  # it learned (chance is 0.1)
    assert_same_epoch(images, labels, activation="softplus", lr=0.01)


def sorted_in_place(z):
    """Not an elementwise function, and nothing numba compiles on a number."""
    z.sort()
    return z


def test_a_function_the_compiler_cannot_take_is_refused_by_name(mnist, monkeypatch):
    monkeypatch.setitem(ACTIVATIONS, "sorted", Activation("sorted", sorted_in_place, np.abs))
    config = TrainConfig(activation="sorted", epochs=1, validation=100, kernel="compiled")
    net = Network(config.sizes, "sorted", config.output, rng=np.random.default_rng(0))
    before = net.params.copy()
    images, labels = mnist.train_images[:500], mnist.train_labels[:500]
    with pytest.raises(kernel.CompileError, match="sorted_in_place.*use kernel 'numpy'"):
        fit(net, images, labels, config, np.random.default_rng(0))
    assert net.params.tobytes() == before.tobytes()  # refused before a single step


def test_compiled_divergence_is_the_same_clear_error(mnist):
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    net = Network(rng=np.random.default_rng(0))
    config = TrainConfig(lr=1e36, epochs=2, validation=0, kernel="compiled")
    with pytest.raises(TrainingDiverged, match="learning rate 1e\\+36"):
        fit(net, images, labels, config, np.random.default_rng(0))
    assert np.isfinite(net.params).all()


@pytest.mark.parametrize("enabled", [True, False])
def test_subnormals_are_flushed_inside_and_only_inside(enabled):
    """On x86 the compiled loop flushes subnormal floats to zero, and only while it runs;
    with flushing off (and on other processors) nothing changes."""
    if enabled and not kernel.FLUSHES_SUBNORMALS:
        pytest.skip("no MXCSR on this processor")
    tiny = np.array([1e-38], np.float32)
    assert (tiny * np.float32(0.01))[0] != 0  # a subnormal result, as IEEE 754 says
    with kernel.subnormals_flushed(enabled):
        inside = (tiny * np.float32(0.01))[0]
        subnormal_input = (np.array([1e-40], np.float32) * np.float32(1))[0]
    assert bool(inside == 0) is enabled
    assert bool(subnormal_input == 0) is enabled
    assert (tiny * np.float32(0.01))[0] != 0
    assert np.float32(1e-40) > 0  # subnormal inputs read as themselves again


def test_training_leaves_subnormal_arithmetic_as_it_was(mnist):
    one_epoch(mnist.train_images[:500], mnist.train_labels[:500], "compiled")
    assert np.float32(1e-38) * np.float32(0.01) != 0
    assert np.float32(1e-40) > 0


def test_auto_takes_the_compiled_loop_only_once_it_is_built(tmp_path):
    """With an empty compile cache "auto" trains with NumPy, without so much as
    importing numba; the loop built in the background (as ``digitnet train`` starts
    it in a terminal) is then taken by the next run."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("NUMBA_OPT", None)
    ask = (
        "import sys; from digitnet.config import TrainConfig; "
        "from digitnet.train import resolve_kernel; "
        "print(resolve_kernel(TrainConfig(sizes=(784, 12, 10))), 'numba' in sys.modules)"
    )

    def resolved() -> str:
        run = subprocess.run([sys.executable, "-c", ask], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert resolved() == "numpy False"  # nothing cached: not even numba is imported
    build = (
        "from digitnet.config import TrainConfig; from digitnet.train import compile_in_background;"
        " compile_in_background(TrainConfig(sizes=(784, 12, 10))).wait()"
    )
    subprocess.run([sys.executable, "-c", build], env=env, check=True, timeout=600)
    assert resolved() == "compiled True"


def test_is_compiled_knows_what_this_process_compiled(mnist):
    config = TrainConfig(epochs=1, validation=300, kernel="compiled")
    train_network(mnist.train_images[:1000], mnist.train_labels[:1000], config)
    assert is_compiled(config)
    assert is_compiled(replace(config, batch_size=7, augment=2, seed=3))  # same types


def test_the_compiled_primitives_give_what_the_plain_ones_give():
    """Each loop ``kernel`` gives numba computes what its plain NumPy definition does,
    and prefetching (a hint to the cache, nothing in plain NumPy) changes nothing."""
    import numba

    from digitnet import primitives

    kernel._compiled_primitives()
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (40, 12), dtype=np.uint8)
    images.flags.writeable = False
    rows = np.array([39, 0, 7, 7, 21])
    targets = rng.random((40, 3), dtype=np.float32)
    labels = np.arange(40) * 10
    scale, shift = np.float32(1 / 255), np.float32(-0.25)

    @numba.njit
    def compiled(images, rows, targets, labels, scale, shift, out):
        primitives.prefetch_rows(images, rows)
        primitives.scaled_rows(images, rows, 2, 11, scale, shift, out, 1)
        return primitives.rows_of(targets, rows), primitives.rows_of(labels, rows)

    def plain(images, rows, targets, labels, scale, shift, out):
        assert primitives.prefetch_rows(images, rows) is None
        primitives.scaled_rows(images, rows, 2, 11, scale, shift, out, 1)
        return primitives.rows_of(targets, rows), primitives.rows_of(labels, rows)

    results = []
    for f in (plain, compiled):
        out = np.full((5, 10), 9, np.float32)
        results.append((*f(images, rows, targets, labels, scale, shift, out), out))
    for ours, theirs in zip(*results, strict=True):
        np.testing.assert_array_equal(theirs, ours)
    out = results[0][-1]
    np.testing.assert_array_equal(out[:, 0], 9)  # left alone
    np.testing.assert_array_equal(out[1, 1:], images[0, 2:11] * scale + shift)
    assert results[0][1].tolist() == [390, 0, 70, 70, 210]
