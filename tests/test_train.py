"""Training: optimisers, schedules, reproducibility, divergence, validation split."""

from dataclasses import replace

import numpy as np
import pytest

from digitnet.config import TrainConfig, TrainingDiverged
from digitnet.learn import kernel
from digitnet.learn.loop import batch_input
from digitnet.learn.network import Network
from digitnet.learn.optimizers import OPTIMIZERS
from digitnet.train import (
    TrainState,
    evaluate,
    fit,
    lr_at,
    one_hot,
    seeded_generators,
    shifts,
    train_network,
)

LOOPS = ["numpy", "compiled"]


@pytest.fixture(params=LOOPS)
def loop(request):
    """Each training behaviour is tested on every loop there is."""
    if request.param == "compiled" and not kernel.AVAILABLE:
        pytest.skip("numba is not installed (pip install 'digitnet[fast]')")
    return request.param


@pytest.fixture(scope="module")
def small(mnist):
    """6,000 training images: enough to learn, quick to train on."""
    return mnist.train_images[:6000], mnist.train_labels[:6000]


def test_default_config_is_the_videos_network():
    config = TrainConfig()
    assert config.sizes == (784, 16, 16, 10)
    assert config.activation == "sigmoid"
    assert config.validation > 0  # the test set never picks the epoch


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_learns(small, mnist, optimizer, loop):
    lr = {"sgd": 0.5, "momentum": 0.05, "adam": 0.01}[optimizer]
    config = TrainConfig(
        optimizer=optimizer, lr=lr, epochs=3, validation=1000, distort=0, kernel=loop
    )  # the optimiser alone: no distorted twins, which slow a 3-epoch run on 5,000 images
    net, history = train_network(*small, config)
    losses = [e.loss for e in history.epochs]
    assert losses[-1] < losses[0]
    accuracy = evaluate(net, mnist.test_images, mnist.test_labels).accuracy
    assert accuracy > 0.7, f"{optimizer}: {accuracy:.2%} after 3 epochs on 5,000 images"


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
@pytest.mark.parametrize(
    "loss, output",
    [
        ("quadratic", "sigmoid"),
        ("cross-entropy", "softmax"),
        ("cross-entropy", "sigmoid"),
        ("quadratic", "softmax"),
    ],
)
def test_every_combination_learns(small, mnist, activation, loss, output, loop):
    config = TrainConfig(
        activation=activation,
        loss=loss,
        output=output,
        epochs=4,
        validation=0,
        lr=0.01 if activation == "sigmoid" else 0.003,
        kernel=loop,
    )
    net, _ = train_network(*small, config)
    accuracy = evaluate(net, mnist.test_images[:2000], mnist.test_labels[:2000]).accuracy
    assert accuracy > 0.7, f"{accuracy:.2%} after 4 epochs on 6,000 images"


def test_same_seed_same_weights_bit_for_bit(small, loop):
    config = TrainConfig(epochs=2, seed=7, kernel=loop)
    a, history_a = train_network(*small, config)
    b, history_b = train_network(*small, config)
    assert a.params.tobytes() == b.params.tobytes()
    assert [e.loss for e in history_a.epochs] == [e.loss for e in history_b.epochs]
    c, _ = train_network(*small, replace(config, seed=8))
    assert not np.array_equal(a.params, c.params)


def test_divergence_is_an_error_that_names_the_learning_rate(small, loop):
    net = Network(rng=np.random.default_rng(0))
    config = TrainConfig(lr=1e36, epochs=2, validation=0, kernel=loop)
    with pytest.raises(TrainingDiverged, match="learning rate 1e\\+36"):
        fit(net, *small, config, np.random.default_rng(0))
    assert np.isfinite(net.params).all()


def test_validation_split_picks_the_best_epoch(small, loop):
    config = TrainConfig(epochs=4, validation=1000, kernel=loop)
    _, history = train_network(*small, config)
    accuracies = [e.val_accuracy for e in history.epochs]
    assert history.best_epoch == 1 + int(np.argmax(accuracies))
    assert all(e.val_loss is not None for e in history.epochs)


def test_kept_weights_are_the_best_epochs(small, loop):
    """The returned network scores on the validation images what its epoch scored."""
    images, labels = small
    config = TrainConfig(epochs=3, validation=1000, seed=3, kernel=loop)
    net, history = train_network(images, labels, config)
    _, data_rng = seeded_generators(3)
    held_out = data_rng.permutation(len(images))[:1000]
    accuracy = evaluate(net, images[held_out], labels[held_out]).accuracy
    assert accuracy == pytest.approx(history.epochs[history.best_epoch - 1].val_accuracy)


def test_patience_stops_early(small, loop):
    # a learning rate of almost nothing never improves on epoch 1
    config = TrainConfig(
        epochs=10, lr=1e-12, validation=500, patience=2, schedule="constant", kernel=loop
    )
    _, history = train_network(*small, config)
    assert history.stopped == "early-stopped"
    assert len(history.epochs) == 3 and history.best_epoch == 1


def test_normalisation_is_folded_into_the_first_layer(small, loop):
    """Trained on standardised pixels, the returned net reads raw [0, 1] pixels and
    scores on the held-out images exactly what training measured on them."""
    images, labels = small
    config = TrainConfig(epochs=2, normalize=True, validation=1000, lr=0.003, seed=4, kernel=loop)
    net, history = train_network(images, labels, config)
    _, data_rng = seeded_generators(4)
    held_out = data_rng.permutation(len(images))[:1000]
    accuracy = evaluate(net, images[held_out], labels[held_out]).accuracy
    assert accuracy == pytest.approx(history.epochs[history.best_epoch - 1].val_accuracy)
    assert accuracy > 0.6  # it learned (chance is 0.1)


def test_cosine_schedule():
    config = TrainConfig(lr=0.1, schedule="cosine")
    assert lr_at(config, 0, 100) == pytest.approx(0.1)
    assert lr_at(config, 50, 100) == pytest.approx(0.05)
    assert lr_at(config, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(TrainConfig(lr=0.1, schedule="constant"), 70, 100) == 0.1


def test_weight_decay_touches_weights_not_biases():
    net = Network((4, 3, 2), rng=np.random.default_rng(0))
    mask = net.weight_mask()
    assert mask.sum() == 4 * 3 + 3 * 2
    for b in net.b:
        b[...] = 5
    assert not (mask * net.params == 5).any()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr": 0}, "lr must be a positive"),
        ({"batch_size": -1}, "batch_size must be a positive"),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"loss": "hinge"}, "unknown loss 'hinge'; expected one of: cross-entropy, quadratic"),
        ({"schedule": "step"}, "unknown schedule"),
        ({"momentum": 1.5}, "momentum"),
        ({"weight_decay": -1}, "weight_decay"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_one_hot():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


def moved(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``batch_input`` of one 28x28 uint8 picture, as 0-255 floats."""
    out = np.empty((1, 784), np.float32)
    rows = np.array([0])
    return batch_input(image.reshape(1, 784), rows, dy, dx, np.float32(1), np.float32(0), out)


def test_batch_input_moves_the_digit_and_keeps_it_whole():
    image = np.zeros((28, 28), np.uint8)
    image[10:15, 12:14] = 200
    there = moved(image, 2, -1).reshape(28, 28)
    assert there[12:17, 11:13].min() == 200 and there.sum() == image.sum()
    back = moved(there.astype(np.uint8), -2, 1).reshape(28, 28)
    np.testing.assert_array_equal(back, image)
    for dy, dx in shifts(3):  # the same move as np.roll with the wrapped pixels blanked
        expected = np.roll(image, (dy, dx), axis=(0, 1)).astype(np.float32)
        expected[: max(dy, 0)] = expected[28 + min(dy, 0) :] = 0
        expected[:, : max(dx, 0)] = expected[:, 28 + min(dx, 0) :] = 0
        np.testing.assert_array_equal(moved(image, dy, dx).reshape(28, 28), expected)
    edge = np.full((28, 28), 9, np.uint8)
    assert moved(edge, 0, 1).reshape(28, 28)[:, 0].sum() == 0  # vacated column
    assert moved(edge, -1, 0).reshape(28, 28)[-1].sum() == 0  # vacated row


def test_batch_input_scales_and_shifts():
    images = np.array([[0, 255, 51, 102]], np.uint8)
    out = np.empty((1, 4), np.float32)
    x = batch_input(images, np.array([0]), 0, 0, np.float32(2 / 255), np.float32(-1), out)
    np.testing.assert_allclose(x, [[-1, 1, -0.6, -0.2]], atol=1e-6)


def test_augment_moves_are_one_axis_at_a_time():
    assert sorted(shifts(1)) == [(-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)]
    assert len(shifts(2)) == 9


def test_augment_must_leave_some_of_the_picture(loop):
    # two hidden layers, as the default network: the same compiled loop serves both
    images, labels = np.zeros((50, 16), np.uint8), np.zeros(50, np.uint8)
    config = TrainConfig(sizes=(16, 4, 4, 10), augment=4, validation=10, kernel=loop)
    with pytest.raises(ValueError, match="4x4 pictures by at most 3 pixels, got 4"):
        fit(Network((16, 4, 4, 10)), images, labels, config, np.random.default_rng(0))
    net = Network((16, 4, 4, 10))
    fit(net, images, labels, replace(config, augment=3), np.random.default_rng(0))
    assert np.isfinite(net.params).all()


def test_augment_needs_square_images():
    net = Network((30, 4, 10))
    with pytest.raises(ValueError, match="square images"):
        fit(
            net,
            np.zeros((50, 30), np.uint8),
            np.zeros(50, np.uint8),
            TrainConfig(sizes=(30, 4, 10), augment=1),
            np.random.default_rng(0),
        )


def test_resume_gives_the_same_weights_as_an_unbroken_run(small, loop):
    images, labels = small
    config = TrainConfig(epochs=4, validation=500, seed=11, kernel=loop)
    states = []
    whole, history = train_network(images, labels, config, on_state=states.append)
    assert [s.epoch for s in states] == [1, 2, 3, 4]
    init_rng, data_rng = seeded_generators(config.seed)
    again = Network(config.sizes, config.activation, config.output, rng=init_rng)
    resumed = fit(again, images, labels, config, data_rng, resume=states[1])
    assert again.params.tobytes() == whole.params.tobytes()

    def without_time(h):
        return [{k: v for k, v in vars(e).items() if k != "seconds"} for e in h.epochs]

    assert without_time(resumed) == without_time(history)
    assert resumed.best_epoch == history.best_epoch


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_hands_over_its_state_and_resumes(small, optimizer):
    """on_state (which checkpoints and the page's worker use) works for every optimiser,
    holding exactly the averages it names; resuming from it gives the unbroken run's
    weights.  (SGD names no average and momentum one: the state once zipped all of them.)"""
    images, labels = small[0][:2000], small[1][:2000]
    config = TrainConfig(epochs=2, validation=200, optimizer=optimizer, lr=0.05, kernel="numpy")
    states: list[TrainState] = []
    whole, _ = train_network(images, labels, config, on_state=states.append)
    assert [s.epoch for s in states] == [1, 2]
    assert sorted(states[0].optimizer) == sorted(OPTIMIZERS[optimizer].names)
    init_rng, data_rng = seeded_generators(config.seed)
    again = Network(config.sizes, config.activation, config.output, rng=init_rng)
    fit(again, images, labels, config, data_rng, resume=states[0])
    assert again.params.tobytes() == whole.params.tobytes()


def test_ctrl_c_keeps_the_best_weights_so_far(small, loop):
    """A KeyboardInterrupt during epoch 3 ends training with epoch 2's record and the
    best weights of epochs 1-2; the history says it was interrupted."""
    images, labels = small
    config = TrainConfig(epochs=5, validation=500, seed=2, kernel=loop)
    states: list[TrainState] = []

    def on_batch(done: int, total: int) -> None:
        if len(states) == 2 and done > total // 2:
            raise KeyboardInterrupt

    net, history = train_network(images, labels, config, on_batch=on_batch, on_state=states.append)
    assert history.stopped == "interrupted" and len(history.epochs) == 2
    assert net.params.tobytes() == states[-1].best_params.tobytes()


def test_progress_is_reported_within_each_epoch(small, loop):
    images, labels = small
    seen: list[tuple[int, int]] = []
    config = TrainConfig(epochs=1, validation=500, kernel=loop)
    train_network(images, labels, config, on_batch=lambda *a: seen.append(a))
    assert len(seen) >= 5 and seen[-1] == (5500, 5500)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_an_optimizer_owns_its_state_and_steps_downhill():
    """step(params, grad, lr) on f(θ) = ½‖θ‖² (gradient θ) moves every optimiser toward
    0, counting its steps; the loop needs nothing else from it."""
    for name, optimizer_class in OPTIMIZERS.items():
        theta = np.array([3.0, -2.0], np.float32)
        optimizer = optimizer_class(2, np.float32)
        for _ in range(50):
            optimizer.step(theta, theta.copy(), 0.05)
        assert optimizer.steps == 50, name
        assert np.abs(theta).max() < 2.5, (name, theta)
