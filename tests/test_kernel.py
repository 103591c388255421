"""The compiled loop: the same source as the NumPy loop, compiled by numba.  Same
mini-batches, same shifts, same equations, so the same weights to float32 rounding;
a new registry entry trains on every loop."""

import os
import subprocess
import sys
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from digitnet.config import TrainConfig
from digitnet.learn import activations, kernel
from digitnet.learn.activations import ACTIVATIONS, LOSSES, Activation
from digitnet.learn.network import Network
from digitnet.learn.optimizers import OPTIMIZERS
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


# Every combination the registries make, each compiled once per run and shared by every
# test that trains it (test_train.py's every-combination test trains the same ones on
# both loops): each activation with each output and cost under Adam, and each other
# optimiser once.  Tiny data: 700 training images, 22 batches.
COMBINATIONS = [
    dict(activation=activation, loss=loss, output=output, lr=0.003, augment=1, weight_decay=1e-4)
    for activation in sorted(ACTIVATIONS)
    for loss, output in sorted(LOSSES)
] + [dict(optimizer=name, lr=0.1 if name == "sgd" else 0.02) for name in sorted(OPTIMIZERS)
     if name != "adam"]  # fmt: skip


def test_the_combinations_cover_every_registry_entry():
    assert {c.get("activation", "sigmoid") for c in COMBINATIONS} == set(ACTIVATIONS)
    assert {(c["loss"], c["output"]) for c in COMBINATIONS if "loss" in c} == set(LOSSES)
    assert {c.get("optimizer", "adam") for c in COMBINATIONS} == set(OPTIMIZERS)


@pytest.mark.parametrize("settings", COMBINATIONS, ids=lambda s: "-".join(map(str, s.values())))
def test_every_combination_runs_compiled_and_matches_numpy(mnist, settings):
    assert_same_epoch(mnist.train_images[:1000], mnist.train_labels[:1000], **settings)


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


def running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a finished one may linger as a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_auto_from_a_script_builds_the_loop_for_the_next_run(tmp_path, mnist):
    """With an empty compile cache, a script under "auto" (no terminal: its output is
    captured) trains with NumPy, without so much as importing numba, and starts the
    compiled loop's build in a process that outlives it; that process writes numba's
    cache and ends, and the next run takes the compiled loop.

    The suite's one compile from an empty cache, and at numba's own optimisation level
    (every other test shares the run's cache, built at ``conftest.NUMBA_OPT``): an
    epoch trained with it gives the very weights the run's loop gives."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "DIGITNET_BACKGROUND_BUILD": "1"}
    env.pop("NUMBA_OPT", None)
    ask = (
        "import sys; from digitnet.config import TrainConfig; "
        "from digitnet.train import resolve_kernel; "
        "print(resolve_kernel(TrainConfig()), 'numba' in sys.modules)"
    )

    def python(code: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert python(ask) == "numpy False"  # nothing cached: not even numba is imported
    script = (
        "import sys; from digitnet.config import TrainConfig; "
        "from digitnet.files.data import load_mnist; "
        "from digitnet.train import BACKGROUND, train_network; d = load_mnist(); "
        "train_network(d.train_images[:300], d.train_labels[:300], "
        "TrainConfig(epochs=1, validation=0)); "
        "print('numba' in sys.modules, *[p.pid for p in BACKGROUND.values()])"
    )
    imported, pid = python(script).split()
    assert imported == "False"
    deadline = time.monotonic() + 600  # a generous bound on one compile, not a timing
    while running(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(int(pid)), "the background build did not end"
    assert list(tmp_path.rglob("*.nbi")), "the background build wrote no cache"
    assert python(ask) == "compiled True"
    config = TrainConfig(epochs=1, validation=300, kernel="compiled")
    theirs = python(
        "from digitnet.config import TrainConfig; from digitnet.files.data import load_mnist; "
        "from digitnet.train import train_network; d = load_mnist(); "
        f"c = TrainConfig.from_dict({config.to_dict()!r}); "
        "n, _ = train_network(d.train_images[:3000], d.train_labels[:3000], c); "
        "print(n.params.tobytes().hex())"
    )
    ours, _ = train_network(mnist.train_images[:3000], mnist.train_labels[:3000], config)
    assert theirs == ours.params.tobytes().hex()  # the same arithmetic, to the bit


def test_is_compiled_knows_what_this_process_compiled(mnist):
    config = TrainConfig(epochs=1, validation=300, kernel="compiled")
    train_network(mnist.train_images[:1000], mnist.train_labels[:1000], config)
    assert is_compiled(config)
    assert is_compiled(replace(config, batch_size=7, augment=2, seed=3))  # same types


def test_the_compiled_primitives_give_what_the_plain_ones_give():
    """Each of the loops ``kernel`` gives numba (one per function of ``primitives``)
    computes what its plain NumPy definition does, and prefetching (a hint to the
    cache, nothing in plain NumPy) changes nothing.  The products take more rows than
    one block (``block_rows``), so the blocks are joined up too."""
    import numba

    from digitnet.learn import optimizers, primitives

    overloaded = kernel._compiled_primitives()
    names = [name for name in dir(primitives) if isinstance(getattr(primitives, name),
                                                            types.FunctionType)]  # fmt: skip
    assert sorted(f.__name__ for f in overloaded) == sorted(names)  # every one, once
    kernel._register([activations.sigmoid, activations.sigmoid_prime, optimizers.adam_rule])

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (40, 12), dtype=np.uint8)
    images.flags.writeable = False
    rows = np.array([39, 0, 7, 7, 21])
    targets = rng.random((40, 3), dtype=np.float32)
    labels = np.arange(40) * 10
    scale, shift = np.float32(1 / 255), np.float32(-0.25)
    z = rng.normal(0, 4, (6, 5)).astype(np.float32)
    b = rng.normal(0, 1, 5).astype(np.float32)
    z[2, 3] = z[2].max() + 1  # a clear winner in one row, and ties in another
    z[4] = 1.5
    guesses_for = np.array([3, 0, 3, 1, 0, 2])
    params, grad = rng.normal(0, 1, (2, 50)).astype(np.float32)
    decay = np.where(np.arange(50) % 2, np.float32(1e-3), np.float32(0))
    wide = rng.random((150, 784), dtype=np.float32)  # 150 rows: three blocks of 64
    weights = rng.normal(0, 1, (16, 784)).astype(np.float32)
    errors = rng.normal(0, 1, (150, 16)).astype(np.float32)
    adam = optimizers.adam_constants(0.01, 3, (np.float32(0.9), np.float32(0.999),
                                               np.float32(1e-8)))  # fmt: skip

    def primitives_of(images, rows, targets, labels, scale, shift, out, z, b, params, grad,
                      decay, m, v, adam, guesses_for, wide, weights, errors):  # fmt: skip
        primitives.prefetch_rows(images, rows)
        gradient = np.empty((errors.shape[1], wide.shape[1]), np.float32)
        primitives.transposed_times(errors, wide, gradient)
        primitives.scaled_rows(images, rows, 2, 11, scale, shift, out, 1)
        a = primitives.each(activations.sigmoid, z, b)
        back = primitives.times_each(z, activations.sigmoid_prime, a)
        primitives.each_parameter(optimizers.adam_rule, params, grad, decay, m, v, adam)
        return (
            primitives.rows_of(targets, rows), primitives.rows_of(labels, rows), a, back,
            primitives.row_max(z), primitives.row_sum(z),
            primitives.correct_guesses(z, guesses_for),
            primitives.times_transposed(wide, weights), gradient,
            primitives.block_rows(wide.shape[1], weights.shape[0]),
        )  # fmt: skip

    results = []
    for f in (primitives_of, numba.njit(primitives_of)):
        out = np.full((5, 10), 9, np.float32)
        p, m, v = params.copy(), np.full(50, 0.1, np.float32), np.full(50, 0.2, np.float32)
        computed = f(images, rows, targets, labels, scale, shift, out, z, b, p, grad, decay,
                     m, v, adam, guesses_for, wide, weights, errors)  # fmt: skip
        results.append((*computed, out, p, m, v))
    # float32 arithmetic in another order (NumPy's whole arrays against one element at a
    # time): at most a few roundings apart, 8 · EPS relative
    for ours, theirs in zip(*results, strict=True):
        np.testing.assert_allclose(theirs, ours, rtol=8 * np.finfo(np.float32).eps)
    names = ["targets", "labels", "a", "back", "max", "sum", "right", "z", "dW", "rows", "out",
             "params"]  # fmt: skip
    plain = dict(zip(names, results[0], strict=False))
    np.testing.assert_array_equal(plain["out"][:, 0], 9)  # left alone
    np.testing.assert_array_equal(plain["out"][1, 1:], images[0, 2:11] * scale + shift)
    assert plain["labels"].tolist() == [390, 0, 70, 70, 210]
    np.testing.assert_allclose(plain["a"], 1 / (1 + np.exp(-(z + b))), rtol=1e-6)
    np.testing.assert_allclose(plain["back"], z * plain["a"] * (1 - plain["a"]), rtol=1e-6)
    np.testing.assert_array_equal(plain["max"][:, 0], z.max(axis=1))
    np.testing.assert_allclose(plain["sum"][:, 0], z.sum(axis=1), rtol=1e-6)
    assert plain["right"] == np.count_nonzero(z.argmax(axis=1) == guesses_for)
    assert plain["right"] >= 2  # row 2's winner and row 4's first of equals are counted
    assert not np.array_equal(plain["params"], params)  # Adam moved every parameter
    assert plain["rows"] == 64 and primitives.block_rows(784, 16) == 64
    assert primitives.block_rows(16, 16) == 4096
    exact = wide.astype(np.float64)  # products in float64, one call: near enough
    np.testing.assert_allclose(plain["z"], exact @ weights.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(plain["dW"], errors.T @ exact, rtol=1e-4, atol=1e-4)
