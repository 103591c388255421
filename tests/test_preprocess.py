"""Pictures to MNIST form, and reading digits from picture files."""

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import cli
from digitnet.vision.preprocess import (
    MAX_PIXELS,
    PictureError,
    greyscale,
    ink_map,
    read_digit,
    steps,
    to_mnist,
)
from digitnet.vision.recognise import predict_image, predict_pixels
from pictures import FONTS, printed, variants

N_DIGITS = 200


def test_output_is_mnist_shaped():
    picture = np.full((300, 200), 255, np.uint8)
    picture[40:200, 90:110] = 0  # a dark bar: a "1" on white paper
    x = to_mnist(picture)
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x.min() == 0 and x.max() == 1
    rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
    assert rows[-1] - rows[0] + 1 == 20  # the longer side fills the 20 px box
    assert cols[-1] - cols[0] + 1 < 6  # the aspect ratio is kept
    r, c = np.indices(x.shape)
    assert abs((r * x).sum() / x.sum() - 14) <= 0.5  # centre of mass at (14, 14)
    assert abs((c * x).sum() / x.sum() - 14) <= 0.5
    assert x[0].sum() == x[-1].sum() == 0  # white ink on black


def test_mnist_digits_are_nearly_unchanged(trained, mnist):
    """A digit already in MNIST form stays recognised: within 1 point of raw accuracy."""
    net, _ = trained
    images, labels = mnist.test_images[:2000], mnist.test_labels[:2000]
    raw = np.mean(net.predict(images) == labels)
    processed = np.array([to_mnist(im.reshape(28, 28)) for im in images])
    through = np.mean(net.predict(processed.reshape(-1, 784)) == labels)
    assert through >= raw - 0.01, (raw, through)
    assert np.abs(processed - images.reshape(-1, 28, 28) / 255).mean() < 0.02


@pytest.fixture(scope="module")
def variant_accuracy(trained, mnist):
    net, _ = trained
    rng = np.random.default_rng(0)
    right: dict[str, list[bool]] = {}
    for i in range(N_DIGITS):
        for kind, picture in variants(mnist.test_images[i].reshape(28, 28), rng).items():
            right.setdefault(kind, []).append(
                predict_image(net, picture).digit == mnist.test_labels[i]
            )
    raw = float(np.mean(net.predict(mnist.test_images[:N_DIGITS]) == mnist.test_labels[:N_DIGITS]))
    return raw, {kind: float(np.mean(r)) for kind, r in right.items()}


# Floors a few points under what these generated sets measured (see the README).
FLOORS = {
    "shifted": 0.93,
    "scaled": 0.93,
    "inverted": 0.93,
    "rgb": 0.93,
    "rgba-transparent": 0.93,
    "white-on-transparent": 0.93,
    "palette": 0.93,
    "thick": 0.85,
    "thin": 0.88,
    "noisy-uneven-paper": 0.8,
    "small-in-corner": 0.93,
}


@pytest.mark.parametrize("kind", sorted(FLOORS))
def test_people_style_pictures_keep_their_predictions(variant_accuracy, kind):
    raw, accuracy = variant_accuracy
    assert accuracy[kind] >= FLOORS[kind], f"{kind}: {accuracy[kind]:.1%} (raw {raw:.1%})"


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((50, 40), np.uint8),
        np.full((50, 40, 3), 0.5),
        np.full((30, 30, 4), 255, np.uint8),
    ],
)
def test_empty_pictures_have_no_ink(array):
    with pytest.raises(PictureError, match="no ink"):
        to_mnist(array)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.full((20, 20), np.nan), "NaN"),
        (np.zeros((2, 3, 4, 5)), "expected a picture array"),
        (np.zeros((20, 20, 2)), "colour channels"),
        (np.array([["a"]]), "expected a picture array"),
        (np.zeros((0, 5)), "expected a picture array"),
    ],
)
def test_bad_arrays(array, message):
    with pytest.raises(PictureError, match=message):
        to_mnist(array)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def files(tmp_path, mnist):
    seven = 255 - np.asarray(
        Image.fromarray(mnist.test_images[0].reshape(28, 28)).resize((140, 140))
    )
    good = tmp_path / "seven.png"
    good.write_bytes(png(seven))
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(bomb)  # 100 megapixels in a few kB
    bad = {
        "not-an-image.png": (b"this is text", "not an image"),
        "truncated.png": (good.read_bytes()[:200], "truncated"),
        "empty.png": (png(np.full((64, 64), 255, np.uint8)), "no ink"),
    }
    for name, (content, _) in bad.items():
        (tmp_path / name).write_bytes(content)
    messages = {str(tmp_path / name): message for name, (_, message) in bad.items()}
    messages[str(bomb)] = "decompression-bomb"
    messages[str(tmp_path)] = "is a directory"
    messages[str(tmp_path / "missing.png")] = "no such file"
    return good, messages


def test_bad_files_are_clear_errors(files):
    _, messages = files
    for path, message in messages.items():
        with pytest.raises(PictureError, match=message):
            read_digit(path)
    assert MAX_PIXELS < 100_000_000


def test_predict_image_from_path_bytes_and_array(trained, files):
    net, _ = trained
    good, _ = files
    from_path = predict_image(net, good)
    assert from_path.digit == 7 and from_path.confidence > 0.5
    assert predict_image(net, good.read_bytes()).probabilities == from_path.probabilities
    assert predict_image(net, np.asarray(Image.open(good))).digit == 7
    assert len(from_path.probabilities) == 10
    assert sum(from_path.probabilities) == pytest.approx(1, abs=1e-5)
    assert [d for d, _ in from_path.top(3)][0] == 7
    assert [a.shape for a in from_path.activations] == [(784,), (16,), (16,), (10,)]
    again = predict_pixels(net, from_path.input)
    assert again.probabilities == from_path.probabilities


def test_predict_cli(trained, files, tmp_path):
    _, model = trained
    good, messages = files
    saved = tmp_path / "seen"
    result = cli("predict", model, good, *messages, "--json", "--save-input", saved)
    assert result.returncode == 2  # some files failed...
    answers = json.loads(result.stdout)
    assert len(answers) == 1 + len(messages)  # ...but every file got its answer
    first = answers[0]
    assert first["file"] == str(good) and first["digit"] == 7
    assert len(first["probabilities"]) == 10 and 0.5 < first["confidence"] <= 1
    for answer in answers[1:]:
        assert messages[answer["file"]] in answer["error"] or "no such" in answer["error"]
    assert "Traceback" not in result.stderr
    seen = Image.open(saved / "seven.png")
    assert seen.size == (28, 28)
    assert np.asarray(seen).max() == 255 and np.asarray(seen)[0].max() == 0


def test_predict_cli_text_and_exit_code(trained, files):
    _, model = trained
    good, _ = files
    result = cli("predict", model, good)
    assert result.returncode == 0
    assert result.stdout.startswith(f"{good}: 7 (") and "top 3: 7" in result.stdout


def test_digits_from_other_writers(trained):
    """scikit-learn's 1,797 digits (UCI, 43 writers none of whom wrote MNIST), 8x8 at 17
    grey levels, drawn larger as a person's picture would be: a hard set, since 8x8
    loses detail.  The 10-epoch test model measured 81.4% (74.3% while wide strokes
    came out hollow), a 40-epoch model 85.3%."""
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn not installed")
    net, _ = trained
    digits = datasets.load_digits()
    right = []
    for image, label in zip(digits.images, digits.target, strict=True):
        small = Image.fromarray((image / 16 * 255).astype(np.uint8))
        picture = np.asarray(small.resize((80, 80), Image.Resampling.BICUBIC))
        right.append(predict_image(net, picture).digit == label)
    assert np.mean(right) >= 0.77, f"{np.mean(right):.1%}"


# -- wide strokes, printed digits, dots ---------------------------------------------------


def arc(cx, cy, rx, ry, start, end, n=24):
    """Points along an ellipse from angle start to end (degrees, y pointing down)."""
    t = np.radians(np.linspace(start, end, n + 1))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t), strict=True))


# Each digit as a person draws it on the page's 280x280 pad, as strokes of points.
HAND = {
    0: [arc(140, 140, 70, 100, -90, 270, 40)],
    1: [[(150, 40), (140, 140), (130, 240)]],
    2: [arc(140, 95, 65, 55, 180, 360, 16) + [(200, 110), (75, 235), (215, 235)]],
    3: [arc(135, 85, 60, 45, 200, 450, 20) + arc(135, 180, 70, 55, -90, 160, 20)],
    4: [[(170, 240), (170, 40), (70, 170), (220, 170)]],
    5: [[(200, 45), (90, 45), (80, 125)] + arc(135, 170, 70, 65, -125, 150, 24)],
    6: [[(190, 40), (120, 90), (80, 175)] + arc(140, 180, 62, 58, 180, -180, 30)],
    7: [[(60, 50), (220, 50), (170, 130), (110, 245)]],
    8: [arc(140, 85, 50, 45, 90, 450, 24) + arc(140, 180, 65, 58, -90, 270, 30)],
    9: [arc(140, 95, 55, 52, 0, 360, 28) + [(195, 95), (185, 170), (160, 245)]],
}


def drawn(strokes, width: int) -> Image.Image:
    """Dark strokes on a white 280x280 pad with a round pen, as the page draws them."""
    pad = Image.new("L", (280, 280), 255)
    draw = ImageDraw.Draw(pad)
    r = width / 2
    for points in strokes:
        draw.line(points, fill=0, width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=0)
    return pad


def holes(ink: np.ndarray) -> int:
    """How many regions of background (ink < 0.5) the ink encloses, not counting
    specks of under 4 px: a 7 has none, a 0 one, an 8 two; a stroke drawn as its
    outline encloses one more."""
    background = ink < 0.5
    outside = np.zeros_like(background)
    outside[[0, -1], :], outside[:, [0, -1]] = background[[0, -1], :], background[:, [0, -1]]
    while True:  # flood the background from the border, 4-connected
        grown = outside.copy()
        grown[1:] |= outside[:-1]
        grown[:-1] |= outside[1:]
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown &= background
        if (grown == outside).all():
            break
        outside = grown
    inside = {tuple(p) for p in np.argwhere(background & ~outside)}
    count = 0
    while inside:  # the enclosed regions, one flood at a time
        todo, size = [inside.pop()], 1
        while todo:
            r, c = todo.pop()
            for q in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if q in inside:
                    inside.remove(q)
                    todo.append(q)
                    size += 1
        count += size >= 4
    return count


@pytest.mark.parametrize("width", [20, 40, 60, 70])
def test_wide_strokes_stay_solid(width):
    """A marker stroke is ink all the way across, not its outline: the ink found
    encloses exactly the holes the drawing has (a 7 none, a 0 one), however wide
    the pen, and so does the network's input for the digits with no holes."""
    for digit in range(10):
        pad = drawn(HAND[digit], width)
        inside = np.asarray(pad) < 128
        ink = ink_map(greyscale(pad))
        assert holes(ink) == holes(inside.astype(float)), (digit, width)
        assert ink[inside].min() > 0.9, (digit, width)  # the middle of the stroke is ink
    for digit in (1, 7):
        assert holes(to_mnist(drawn(HAND[digit], width))) == 0, (digit, width)
    assert holes(ink_map(greyscale(drawn(HAND[0], width)))) == 1


def test_a_60_px_seven_reads_as_seven(trained):
    net, _ = trained
    for width in (20, 40, 60):
        prediction = predict_image(net, drawn(HAND[7], width))
        assert prediction.digit == 7 and prediction.confidence > 0.9, width


def test_wide_pens_read_like_narrow_ones(trained):
    """Every digit the network reads right drawn with the page's normal pen (20 px)
    it still reads right drawn with a marker (40 and 60 px)."""
    net, _ = trained
    read = {
        width: [predict_image(net, drawn(HAND[d], width)).digit for d in range(10)]
        for width in (20, 40, 60)
    }
    right = [d for d in range(10) if read[20][d] == d]
    assert len(right) >= 8, read
    for width in (40, 60):
        assert [read[width][d] for d in right] == right, read


def test_bold_print_reads_as_well_as_plain_print(trained):
    """Printed digits, plain and thickened by 6 and 12 px (strokes up to about 60 px):
    the bold ones are read about as often as the plain ones.  (Before the paper was
    estimated from the paper alone, the boldest read 28 of 80 in eight fonts.)"""
    net, _ = trained
    right = {
        bold: sum(
            predict_image(net, printed(name, d, bold)).digit == d
            for name in FONTS
            for d in range(10)
        )
        for bold in (0, 6, 12)
    }
    assert right[0] >= 30, right  # of 40: printed digits are not MNIST's handwriting
    # Each count moves by a few from one 10-epoch model to another (measured on two:
    # {0: 34, 6: 30, 12: 30} and {0: 35, 6: 33, 12: 28}); hollow strokes read 14 of 40.
    assert right[6] >= 0.8 * right[0] and right[12] >= 0.75 * right[0], right


@pytest.mark.parametrize("diameter", [6, 20, 60])
def test_a_dot_stays_a_dot(diameter):
    """One touch of the pen is not blown up into a disc that fills the 20x20 box."""
    pad = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(pad).ellipse([90, 150, 90 + diameter, 150 + diameter], fill=0)
    step = steps(pad)
    assert step.pen == "shrunk"
    x = step.field
    rows, cols = np.flatnonzero(x.max(1) > 0.05), np.flatnonzero(x.max(0) > 0.05)
    assert rows[-1] - rows[0] < 8 and cols[-1] - cols[0] < 8
    r, c = np.indices(x.shape)
    assert abs((r * x).sum() / x.sum() - 14) <= 0.5 and abs((c * x).sum() / x.sum() - 14) <= 0.5


def test_steps_lead_to_the_input():
    pad = drawn(HAND[4], 20)
    step = steps(pad)
    assert np.array_equal(step.field, to_mnist(pad))
    top, left, bottom, right = step.bounds
    assert step.ink.shape == (280, 280) and step.ink[top:bottom, left:right].any(0).all()
    assert not step.ink[:top].any() and not step.ink[bottom:].any()
    assert max(step.box.shape) == 20 and step.pen in ("kept", "thickened")
    t, left_ = step.offset
    h, w = step.box.shape
    assert np.array_equal(step.field[t : t + h, left_ : left_ + w], step.box)
    assert step.field.sum() == pytest.approx(step.box.sum())
    assert steps(drawn(HAND[4], 60)).pen == "thinned"
