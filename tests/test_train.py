"""Training: optimisers, schedules, reproducibility, divergence, validation split."""

from dataclasses import replace

import numpy as np
import pytest

from digitnet import kernel
from digitnet.network import Network
from digitnet.train import (
    OPTIMIZERS,
    TrainConfig,
    TrainingDiverged,
    evaluate,
    fit,
    lr_at,
    one_hot,
    seeded_generators,
    shifted,
    shifts,
    train_network,
)


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
def test_every_optimizer_learns(small, mnist, optimizer):
    lr = {"sgd": 0.5, "momentum": 0.05, "adam": 0.01}[optimizer]
    config = TrainConfig(optimizer=optimizer, lr=lr, epochs=3, validation=1000)
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
def test_every_combination_learns(small, mnist, activation, loss, output):
    config = TrainConfig(
        activation=activation,
        loss=loss,
        output=output,
        epochs=4,
        validation=0,
        lr=0.01 if activation == "sigmoid" else 0.003,
    )
    net, _ = train_network(*small, config)
    accuracy = evaluate(net, mnist.test_images[:2000], mnist.test_labels[:2000]).accuracy
    assert accuracy > 0.7, f"{accuracy:.2%} after 4 epochs on 6,000 images"


def test_same_seed_same_weights_bit_for_bit(small):
    config = TrainConfig(epochs=2, seed=7)
    a, history_a = train_network(*small, config)
    b, history_b = train_network(*small, config)
    assert a.params.tobytes() == b.params.tobytes()
    assert [e.loss for e in history_a.epochs] == [e.loss for e in history_b.epochs]
    c, _ = train_network(*small, TrainConfig(epochs=2, seed=8))
    assert not np.array_equal(a.params, c.params)


def test_divergence_is_an_error_that_names_the_learning_rate(small):
    net = Network(rng=np.random.default_rng(0))
    config = TrainConfig(
        optimizer="sgd",
        lr=1e6,
        loss="quadratic",
        output="softmax",
        activation="relu",
        epochs=2,
        validation=0,
    )
    with pytest.raises(TrainingDiverged, match="learning rate 1e\\+06"):
        fit(net, *small, config, np.random.default_rng(0))
    assert np.isfinite(net.params).all()


def test_validation_split_picks_the_best_epoch(small):
    config = TrainConfig(epochs=4, validation=1000)
    _, history = train_network(*small, config)
    accuracies = [e.val_accuracy for e in history.epochs]
    assert history.best_epoch == 1 + int(np.argmax(accuracies))
    assert all(e.val_loss is not None for e in history.epochs)


def test_kept_weights_are_the_best_epochs(small):
    """The returned network scores on the validation images what its epoch scored."""
    images, labels = small
    config = TrainConfig(epochs=3, validation=1000, seed=3)
    net, history = train_network(images, labels, config)
    _, data_rng = seeded_generators(3)
    held_out = data_rng.permutation(len(images))[:1000]
    accuracy = evaluate(net, images[held_out], labels[held_out]).accuracy
    assert accuracy == pytest.approx(history.epochs[history.best_epoch - 1].val_accuracy)


def test_patience_stops_early(small):
    # a learning rate of almost nothing never improves on epoch 1
    config = TrainConfig(epochs=10, lr=1e-12, validation=500, patience=2, schedule="constant")
    _, history = train_network(*small, config)
    assert history.stopped == "early-stopped"
    assert len(history.epochs) == 3 and history.best_epoch == 1


def test_normalisation_is_folded_into_the_first_layer(small):
    """Trained on standardised pixels, the returned net reads raw [0, 1] pixels and
    scores on the held-out images exactly what training measured on them."""
    images, labels = small
    config = TrainConfig(epochs=2, normalize=True, validation=1000, lr=0.003, seed=4)
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
        ({"loss": "hinge"}, "unknown loss/output pair"),
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


def test_shifted_moves_the_digit_and_keeps_it_whole():
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10:15, 12:14] = 200
    out = np.empty((1, 784), np.uint8)
    moved = shifted(image.reshape(1, 784), 2, -1, out).reshape(28, 28)
    assert moved[12:17, 11:13].min() == 200 and moved.sum() == image.sum()
    back = shifted(moved.reshape(1, 784), -2, 1, np.empty((1, 784), np.uint8))
    np.testing.assert_array_equal(back.reshape(28, 28), image[0])
    edge = np.full((1, 784), 9, np.uint8)
    assert shifted(edge, 0, 1, out).reshape(28, 28)[:, 0].sum() == 0  # vacated column


def test_augment_moves_are_one_axis_at_a_time():
    assert sorted(shifts(1)) == [(-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)]
    assert len(shifts(2)) == 9


@pytest.mark.parametrize("loop", ["numpy", "compiled"])
def test_augment_must_leave_some_of_the_picture(loop):
    if loop == "compiled" and not kernel.AVAILABLE:
        pytest.skip("numba is not installed (pip install 'digitnet[fast]')")
    images, labels = np.zeros((50, 16), np.uint8), np.zeros(50, np.uint8)
    config = TrainConfig(sizes=(16, 4, 10), augment=4, validation=10, kernel=loop)
    with pytest.raises(ValueError, match="4x4 pictures by at most 3 pixels, got 4"):
        fit(Network((16, 4, 10)), images, labels, config, np.random.default_rng(0))
    net = Network((16, 4, 10))
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


def test_resume_gives_the_same_weights_as_an_unbroken_run(small):
    images, labels = small
    config = TrainConfig(epochs=4, validation=500, seed=11)
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
