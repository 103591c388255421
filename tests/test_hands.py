"""Other hands: a folder's pair of images and labels scored and trained on
(``evaluate --data``, ``train --add``), distorted twins in training, and digits that
lean further than MNIST's writers do."""

import gzip
import json
import struct
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import cli, write_idx
from digitnet.files.data import (
    MAX_ADD_WEIGHT,
    PAIR,
    Dataset,
    load_pair,
    load_scored,
    with_added,
)
from digitnet.files.modelfile import load
from digitnet.learn.distort import affine, twins
from digitnet.train import evaluate
from digitnet.vision.preprocess import SLANT, slant, steps, to_mnist


@pytest.fixture(scope="module")
def pair(mnist, tmp_path_factory):
    """A folder holding only the pair: 60 MNIST training digits (never its test set)."""
    folder = tmp_path_factory.mktemp("pair")
    write_idx(folder / f"{PAIR['images']}.gz", mnist.train_images[-60:].reshape(-1, 28, 28))
    write_idx(folder / f"{PAIR['labels']}.gz", mnist.train_labels[-60:])
    return folder


def test_load_pair_and_what_evaluate_scores(pair, mnist, small_mnist, tmp_path):
    images, labels = load_pair(pair)
    assert np.array_equal(images, mnist.train_images[-60:])
    assert np.array_equal(labels, mnist.train_labels[-60:])
    assert np.array_equal(load_scored(pair)[1], labels)
    # a folder with MNIST's four files still means its test set, even beside a pair
    for name in PAIR.values():
        (small_mnist / f"{name}.gz").symlink_to(pair / f"{name}.gz")
    try:
        assert np.array_equal(load_scored(small_mnist)[1], mnist.test_labels[:300])
    finally:
        for name in PAIR.values():
            (small_mnist / f"{name}.gz").unlink()
    assert len(load_scored()[1]) == 10_000


def test_evaluate_a_pair_from_the_command_line(trained, pair):
    net, model = trained
    result = cli("evaluate", model, "--data", pair, "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    images, labels = load_pair(pair)
    expected = evaluate(net, images, labels)
    assert answer["n"] == 60 and answer["accuracy"] == pytest.approx(expected.accuracy)
    assert answer["confusion"] == expected.confusion
    text = cli("evaluate", model, "--data", pair)
    assert text.returncode == 0 and f"accuracy on {pair}" in text.stdout


def test_with_added_repeats_the_added_images(mnist):
    data = Dataset(mnist.train_images[:100], mnist.train_labels[:100],
                   mnist.test_images[:10], mnist.test_labels[:10])  # fmt: skip
    extra = np.full((3, 784), 200, np.uint8)
    more = with_added(data, extra, np.array([1, 2, 3]), weight=4)
    assert more.train_images.shape == (112, 784) and more.train_labels.dtype == np.uint8
    assert np.array_equal(more.train_images[:100], data.train_images)
    assert more.train_labels[100:].tolist() == [1, 2, 3] * 4
    assert more.test_images is data.test_images
    bad = [
        (dict(images=extra, labels=np.array([1, 2, 3]), weight=0), "1-100"),
        (dict(images=extra, labels=np.array([1, 2, 3]), weight=MAX_ADD_WEIGHT + 1), "1-100"),
        (dict(images=extra[:, :100], labels=np.array([1, 2, 3]), weight=1), r"\(M, 784\)"),
        (dict(images=extra, labels=np.array([1, 2]), weight=1), "3 whole numbers"),
        (dict(images=extra, labels=np.array([1, 2, 10]), weight=1), "0-9"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            with_added(data, **kwargs)


def idx(array: np.ndarray, magic: int = 0x08) -> bytes:
    head = struct.pack(">BBBB", 0, 0, magic, array.ndim)
    return head + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


BAD_PAIRS = {
    # case: (images file content, labels file content, the file named, what is said)
    "wrong magic": (b"\x1f\x8b", b"", "images", "bad magic number"),
    "count mismatch": (None, idx(np.zeros(7, np.uint8)), "labels", "7 labels for 6 images"),
    "wrong size": (idx(np.zeros((6, 16, 16), np.uint8)), None, "", "784"),
    "not gzip": ("raw", None, "images", "not a gzip file"),
    "missing": (None, "missing", "labels", "no labels-idx1-ubyte"),
}


def bad_pair(folder, case: str):
    images, labels, _, _ = BAD_PAIRS[case]
    good_images = idx(np.zeros((6, 28, 28), np.uint8))
    files = {PAIR["images"]: images, PAIR["labels"]: labels}
    for name, content in files.items():
        good = good_images if name == PAIR["images"] else idx(np.zeros(6, np.uint8))
        if content == "missing":
            continue
        if content == "raw":
            (folder / f"{name}.gz").write_bytes(good)
        elif case == "wrong magic" and name == PAIR["images"]:
            (folder / f"{name}.gz").write_bytes(gzip.compress(b"PK\x03\x04 a zip, not IDX"))
        else:
            (folder / f"{name}.gz").write_bytes(gzip.compress(good if content is None else content))
    return folder


@pytest.mark.parametrize("case", sorted(BAD_PAIRS))
def test_bad_pairs_are_one_line_errors_before_any_work(trained, tmp_path, case):
    _, model = trained
    folder = bad_pair(tmp_path, case)
    _, _, named, message = BAD_PAIRS[case]
    out = tmp_path / "out.safetensors"
    runs = {
        "evaluate": cli("evaluate", model, "--data", folder),
        "train": cli("train", "--add", folder, "--epochs", "1", "--out", out),
    }
    for command, result in runs.items():
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (command, result.stderr)
        assert message in lines[0] and str(folder) in lines[0], (command, lines)
        if named:
            assert PAIR[named] in lines[0], (command, lines)
        assert "epoch" not in result.stdout and not out.exists(), command


def test_train_with_added_digits(pair, small_mnist, tmp_path):
    out = tmp_path / "added.safetensors"
    result = cli("train", "--data", small_mnist, "--add", pair, "--add-weight", "3",
                 "--sizes", "784,8,10", "--epochs", "1", "--validation", "100",
                 "--distort", "0", "--out", out, "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{pair} (60 images x3)" in load(out).info["data"]
    alone = cli("train", "--add-weight", "2", "--out", tmp_path / "x.safetensors")
    assert alone.returncode == 2 and "--add-weight needs --add" in alone.stderr


# -- distorted twins --------------------------------------------------------------------


def test_twins_are_written_in_place_in_little_memory(mnist):
    """Twins of 30,000 digits written into a given array take a few MB beyond it (the
    whole-array way took over 250 MB), and are the twins of those rows."""
    rows = np.arange(0, 60_000, 2)
    out = np.empty((len(rows), 784), np.uint8)
    tracemalloc.start()
    try:
        twins(mnist.train_images, np.random.default_rng(3), rows, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * 2**20
    assert np.array_equal(out, twins(mnist.train_images[rows], np.random.default_rng(3)))


def test_twins_are_the_same_digits_drawn_otherwise(mnist):
    images = mnist.train_images[:200]
    first = twins(images, np.random.default_rng(5))
    assert first.shape == images.shape and first.dtype == np.uint8
    assert np.array_equal(first, twins(images, np.random.default_rng(5)))
    assert not np.array_equal(first, images)
    # no twin loses its digit: its ink stays, about as much of it, near the centre
    ink = first.sum(1) / images.sum(1)
    assert 0.6 < ink.min() and ink.max() < 1.5 and np.median(ink) == pytest.approx(1, abs=0.1)
    r, c = np.indices((28, 28)).reshape(2, -1)
    moved = np.hypot(first @ r / first.sum(1) - images @ r / images.sum(1),
                     first @ c / first.sum(1) - images @ c / images.sum(1))  # fmt: skip
    assert moved.max() < 3
    identity = np.tile(np.eye(2), (len(images), 1, 1))
    assert np.array_equal(affine(images, identity), images)
    turned = affine(images[:1], np.array([[[0.0, 1.0], [-1.0, 0.0]]]))  # a quarter turn
    assert np.array_equal(turned.reshape(28, 28), np.rot90(images[0].reshape(28, 28)))


# -- digits that lean -------------------------------------------------------------------


def leaning(shear: float) -> Image.Image:
    """A 1 (a bar with a foot) on a white pad, sheared by ``shear`` columns per row."""
    pad = Image.new("L", (400, 280), 255)
    draw = ImageDraw.Draw(pad)
    draw.line([(200 - shear * 100, 40), (200 + shear * 100, 240)], fill=0, width=18)
    draw.line([(200 + shear * 100 - 40, 240), (200 + shear * 100 + 40, 240)], fill=0, width=18)
    return pad


def test_digits_leaning_further_than_mnist_are_sheared_back(mnist):
    for shear in (-1.2, 1.0):
        x = to_mnist(leaning(shear))
        assert SLANT[0] - 0.05 <= slant(x) <= SLANT[1] + 0.05, shear
        assert abs(slant(steps(leaning(shear)).ink) - shear) < 0.2  # the ink as drawn
    mild = leaning(0.2)
    assert slant(to_mnist(mild)) == pytest.approx(slant(steps(mild).ink), abs=0.05)
    # MNIST's own digits almost all lean within the range: they pass unchanged
    slants = np.array([slant(d.reshape(28, 28) / 255) for d in mnist.train_images[:2000]])
    assert np.mean((slants >= SLANT[0]) & (slants <= SLANT[1])) > 0.97


# -- digits added to the page's training ------------------------------------------------


def test_a_training_request_may_add_digits(capsys):
    """``add`` and ``add_weight`` are checked by name, and the worker trains on them:
    50 blank-white pictures called 3, each 100 times an epoch, are read as 3."""
    import base64
    import threading

    from digitnet.config import TrainConfig
    from digitnet.server import jobs, worker

    white = base64.b64encode(bytes([255] * 784)).decode()
    body = {"epochs": 1, "add": {"images": [white] * 50, "labels": [3] * 50}, "add_weight": 100}
    rest, added = jobs.added_digits(body)
    assert rest == {"epochs": 1} and added.pictures == 50 * 100
    bad = [
        ({**body, "add_weight": 0}, "add_weight", "1-100"),
        ({**body, "add": {"images": [white], "labels": [3, 4]}}, "add", "same length"),
        ({**body, "add": {"images": ["abc"], "labels": [3]}}, "add", "784 bytes"),
        ({**body, "add": {"images": [white], "labels": [10]}}, "add", "0-9"),
        ({**body, "add": [white]}, "add", "images"),
    ]
    for request, field, message in bad:
        with pytest.raises(jobs.RequestError, match=message) as e:
            jobs.added_digits(request)
        assert e.value.field == field
    assert jobs.added_digits({"epochs": 1}) == ({"epochs": 1}, None)
    added = worker.read_added(added.line.decode())
    assert added[0].shape == (50, 784) and added[2] == 100
    config = TrainConfig(sizes=(784, 8, 10), epochs=1, batch_size=256, distort=0, kernel="numpy")
    last = worker.run(config, threading.Event(), added=added)
    assert last["event"] == "done", last
    assert last["info"]["data"] == "MNIST + 50 added digits x100"
    net = worker_network(config, last["params"])
    assert net.predict(np.full((1, 784), 255, np.uint8))[0] == 3
    capsys.readouterr()


def worker_network(config, params):
    from digitnet.server.jobs import network_of

    return network_of(config, params)
