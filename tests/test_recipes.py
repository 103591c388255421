"""Training recipes: the distortions, the soft targets, the three stages on a small
subset of MNIST, and ``digitnet train --recipe`` (its flags and the model file it
writes).  The full ``best`` recipe takes minutes; its accuracy is in the README."""

from dataclasses import replace

import numpy as np
import pytest

from conftest import cli
from digitnet import load
from digitnet.cli import main
from digitnet.config import TrainConfig
from digitnet.learn.network import Network
from digitnet.recipes import (
    RECIPES,
    Distortion,
    Recipe,
    distort,
    run_recipe,
    smoothing_matrix,
    soft_targets,
)

STILL = Distortion(copies=1, alpha=0, rotate=0, scale=0, shear=0)


@pytest.fixture(scope="module")
def tiny_recipe() -> Recipe:
    """The best recipe's three stages, small: a 784-32-10 teacher and the 784-16-16-10
    student, two epochs each, one distorted copy, 300 images held out."""
    best = RECIPES["best"]
    return replace(
        best,
        student=replace(best.student, epochs=2, kernel="numpy"),
        teacher=TrainConfig(sizes=(784, 32, 10), activation="relu", lr=0.005, batch_size=64,
                            epochs=2, kernel="numpy"),
        distortion=replace(best.distortion, copies=1),
        validation=300,
    )


def test_smoothing_rows_sum_to_one_and_peak_on_the_diagonal():
    g = smoothing_matrix(28, 3.0)
    assert g.shape == (28, 28)
    np.testing.assert_allclose(g.sum(axis=1), 1, rtol=1e-6)
    assert (g.argmax(axis=1) == np.arange(28)).all()


def test_no_distortion_gives_the_same_pictures(mnist):
    images = mnist.train_images[:50]
    np.testing.assert_array_equal(distort(images, np.random.default_rng(0), STILL), images)


def test_a_distortion_moves_pixels_but_keeps_the_ink(mnist):
    images = mnist.train_images[:200]
    bent = distort(images, np.random.default_rng(0), replace(STILL, alpha=8, sigma=3))
    assert bent.dtype == np.uint8 and bent.shape == images.shape
    changed = (bent != images).mean(axis=1)
    assert (changed > 0.02).all()  # every picture moved
    ink = bent.sum(axis=1, dtype=np.int64) / images.sum(axis=1, dtype=np.int64)
    assert 0.8 < np.median(ink) < 1.2  # a bent stroke, not a new one
    again = distort(images, np.random.default_rng(0), replace(STILL, alpha=8, sigma=3))
    np.testing.assert_array_equal(bent, again)  # one generator state, one set of pictures


def test_a_quarter_turn_turns_the_picture():
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 5, 14] = 255  # above the centre
    turned = distort(image.reshape(1, -1), np.random.default_rng(0),
                     replace(STILL, rotate=90)).reshape(28, 28)  # a turn of ±up to 90°
    row, col = np.unravel_index(turned.argmax(), turned.shape)
    assert np.hypot(row - 13.5, col - 13.5) == pytest.approx(8.5, abs=1.5)  # on the circle


def test_distort_refuses_pictures_that_are_not_square():
    with pytest.raises(ValueError, match=r"expected square uint8 images \(N, side²\), got"):
        distort(np.zeros((3, 10), np.uint8), np.random.default_rng(0), STILL)


def test_soft_targets_blend_the_label_and_the_teacher(mnist):
    teacher = Network((784, 8, 10), "relu", "softmax", rng=np.random.default_rng(0))
    images, labels = mnist.train_images[:64], mnist.train_labels[:64]
    y = soft_targets(teacher, images, labels, temperature=4.0, weight=0.3)
    assert y.shape == (64, 10) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-5)
    assert (y.argmax(axis=1) == labels).all()  # 0.7 of the mass stays on the label
    hard = soft_targets(teacher, images, labels, temperature=4.0, weight=0.0)
    np.testing.assert_array_equal(hard, np.eye(10, dtype=np.float32)[labels])
    z = teacher._layers(images[:1] / np.float32(255))[1][0] / 4
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(soft_targets(teacher, images[:1], labels[:1], 4.0, 1.0)[0],
                               expected, rtol=1e-5)


def test_the_stages_train_a_student_on_the_training_images_only(mnist, tiny_recipe):
    images, labels = mnist.train_images[:3000], mnist.train_labels[:3000]
    run = run_recipe(tiny_recipe, images, labels, seed=0)
    assert run.net.sizes == (784, 16, 16, 10)
    assert len(run.history.epochs) == 2
    assert set(run.seconds) == {"distort", "teacher", "student"}
    assert run.validation["teacher"] > 0.8 and run.validation["student"] > 0.6  # 10% is chance


def test_a_held_out_split_larger_than_the_data_is_refused(mnist, tiny_recipe):
    with pytest.raises(ValueError, match="expected 0 <= validation < 100 training images, got 300"):
        run_recipe(tiny_recipe, mnist.train_images[:100], mnist.train_labels[:100], seed=0)


def test_train_recipe_writes_a_model_file_that_records_the_recipe(
    tmp_path, small_mnist, tiny_recipe, monkeypatch, capsys
):
    monkeypatch.setitem(RECIPES, "best", tiny_recipe)
    out = tmp_path / "best.safetensors"
    code = main(["train", "--recipe", "best", "--seed", "1", "--data", str(small_mnist),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "teaching: 784-32-10 relu, 2 epochs" in said and "epoch 2/2" in said
    assert "test accuracy" in said
    info = load(out).info
    assert info["seed"] == 1 and info["config"]["sizes"] == [784, 16, 16, 10]
    assert info["recipe"]["name"] == "best"
    assert info["recipe"]["teacher"]["sizes"] == [784, 32, 10]
    assert set(info["recipe"]["held_out_accuracy"]) == {"teacher", "student"}
    assert 0.1 < info["test_accuracy"] <= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--recipe", "best", "--lr", "0.1"], "--recipe best sets the training itself; --lr"),
        (["--recipe", "worst"], "invalid choice"),
    ],
)
def test_recipe_flags_that_would_change_it_exit_2(args, message):
    result = cli("train", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_recipe_on_too_few_images_exits_2_before_training(small_mnist, tmp_path):
    out = tmp_path / "best.safetensors"
    result = cli("train", "--recipe", "best", "--data", small_mnist, "--out", out)
    assert result.returncode == 2
    assert "expected 0 <= validation < 1000 training images, got 5000" in result.stderr
    assert "distorting" not in result.stdout and "Traceback" not in result.stderr
    assert not out.exists()


def test_a_recipe_without_held_out_images_scores_nothing_on_them(mnist, tiny_recipe):
    recipe = replace(tiny_recipe, teacher=None, distortion=None, validation=0)
    run = run_recipe(recipe, mnist.train_images[:500], mnist.train_labels[:500], seed=0)
    assert run.validation == {} and set(run.seconds) == {"distort", "student"}
