"""The JSON API, through the framework's test client: answers and every bad request."""

import base64
import io
import json

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from digitnet.files.modelfile import load
from digitnet.inspect import explore
from digitnet.server import MAX_BODY_BYTES, MAX_IMAGE_PIXELS, ServerState, jobs
from digitnet.server.errors import add_handlers, status_of
from digitnet.server.models import Models
from digitnet.server.pictures import Pictures, TooManyPictures
from digitnet.server.routes import predict
from digitnet.vision.preprocess import PictureError, PictureTooLarge


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    kind = fmt.lower()
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode()


def canvas_of(digit: np.ndarray) -> Image.Image:
    """An MNIST digit as a page canvas would send it: dark ink on white, 280x280, RGBA."""
    big = Image.fromarray(255 - digit.reshape(28, 28)).resize((280, 280)).convert("RGBA")
    return big


def test_model(client):
    body = client.get("/api/model").json()
    assert body["sizes"] == [784, 16, 16, 10]
    assert body["n_parameters"] == 13_002
    assert body["activation"] == "sigmoid" and body["output"] == "softmax"
    assert 0.9 < body["test_accuracy"] <= 1
    assert [np.shape(W) for W in body["weights"]] == [(16, 784), (16, 16), (10, 16)]
    assert [len(b) for b in body["biases"]] == [16, 16, 10]


def test_predict_pixels(client, trained, mnist):
    net, _ = trained
    pixels = mnist.test_images[0] / 255
    body = client.post("/api/predict", json={"pixels": pixels.tolist()}).json()
    assert body["digit"] == int(net.predict(pixels)) == 7
    assert sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert np.allclose(body["input"], pixels, atol=1e-4)
    assert [len(a) for a in body["activations"]] == [784, 16, 16, 10]
    assert np.allclose(body["activations"][-1], net.forward(pixels), atol=1e-5)


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_predict_canvas_image(client, mnist, index):
    digit = mnist.test_images[index]
    body = client.post("/api/predict", json={"image": data_url(canvas_of(digit))}).json()
    assert body["digit"] == mnist.test_labels[index]
    assert len(body["input"]) == 784 and max(body["input"]) == pytest.approx(1)


def test_sample(client, mnist):
    body = client.get("/api/sample").json()
    assert 0 <= body["label"] <= 9 and len(body["pixels"]) == 784
    assert body["label"] == mnist.test_labels[body["index"]]
    for digit in (0, 7):
        assert client.get(f"/api/sample?digit={digit}").json()["label"] == digit


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="pad"' in page.text and "Clear" in page.text
    for name in ("app.js", "diagram.js", "pad.js", "guess.js", "share.js", "steps.js", "style.css",
                 "diagram.css"):
        assert client.get(f"/static/{name}").status_code == 200


def tiny_png() -> str:
    return data_url(Image.new("L", (8, 8), 255))


BAD_JSON = [
    (b"{not json", 400, "malformed JSON"),
    (b'{"pixels": [NaN' + b", 0" * 783 + b"]}", 422, "pixels"),
    (b'{"pixels": [Infinity' + b", 0" * 783 + b"]}", 422, "pixels"),
    (b"[]", 422, ""),
    (b'"pixels"', 422, ""),
    (b"", 422, ""),
]


@pytest.mark.parametrize("content, status, message", BAD_JSON)
def test_bad_bodies(client, content, status, message):
    response = client.post(
        "/api/predict", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"pixels": [0.5] * 783}, "at least 784"),
        ({"pixels": [0.5] * 785}, "at most 784"),
        ({"pixels": [1.5] + [0] * 783}, "less than or equal to 1"),
        ({"pixels": [-0.1] + [0] * 783}, "greater than or equal to 0"),
        ({"pixels": ["a"] * 784}, "valid number"),
        ({"pixels": 7}, "valid list"),
        ({}, "exactly one of"),
        ({"pixels": [0] * 784, "image": "x"}, "exactly one of"),
        ({"pixel": [0] * 784}, "Extra inputs"),
        ({"image": "hello"}, "data URL"),
        ({"image": "data:image/png;base64,@@@"}, "base64"),
        ({"image": "data:image/png;base64," + base64.b64encode(b"GIF89a...").decode()}, "PNG"),
        ({"image": data_url(Image.new("L", (30, 30), 255), "JPEG")}, "data URL"),
        ({"image": tiny_png()[:60]}, "base64|truncated|unreadable|PNG"),
        ({"image": tiny_png()}, "no ink"),
        ({"image": 12}, "valid string"),
    ],
)
def test_bad_requests_are_4xx_with_a_message(client, body, message):
    response = client.post("/api/predict", json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    import re

    assert re.search(message, error), error


def test_body_over_the_limit(client):
    big = json.dumps({"image": "data:image/png;base64," + "A" * MAX_BODY_BYTES}).encode()
    response = client.post(
        "/api/predict", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and "limit" in response.json()["error"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    response = client.post(
        "/api/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


#: What each endpoint that reads a picture needs besides it.
PICTURE_EXTRAS = {
    "/api/predict": {},
    "/api/preprocess": {},
    "/api/nudge": {"target": 3},
    "/api/gradient": {"label": 3},
    "/api/step": {"label": 3},
}


@pytest.mark.parametrize("path", list(PICTURE_EXTRAS))
def test_image_dimensions_over_the_limit(client, path):
    side = int(MAX_IMAGE_PIXELS**0.5) + 100
    body = {"image": data_url(Image.new("1", (side, side), 1))}
    response = client.post(path, json={**body, **PICTURE_EXTRAS[path]})
    assert response.status_code == 413
    assert "pixel limit" in response.json()["error"]


def test_a_failures_status_comes_from_its_type_not_its_words():
    assert status_of(PictureTooLarge("4001x4001 pixels")) == 413
    assert status_of(PictureError("the picture is over the limit")) == 422
    assert status_of(explore.NudgeFailed("no nudge within the limit")) == 422
    assert status_of(TooManyPictures("too many pictures at once")) == 503
    assert status_of(KeyError("limit")) == 500


def test_a_router_answers_alone_over_a_state_of_its_own(trained, mnist):
    """One router, one ServerState made here: what its endpoints answer depends on that
    state only (50 samples, no picture may wait), and nothing else is wired."""
    model = load(trained[1])
    models = Models(model)
    app = FastAPI()
    add_handlers(app)
    app.include_router(predict.router)
    app.state.server = ServerState(
        served_answer=predict.describe(model),
        models=models,
        trainer=jobs.Trainer(models),
        images=mnist.test_images[:50],
        labels=mnist.test_labels[:50],
        pictures=Pictures(workers=1, queue=0),
    )
    with TestClient(app) as alone:
        sample = alone.get("/api/sample?digit=7").json()
        assert sample["label"] == 7 and sample["index"] < 50
        answer = alone.post("/api/predict", json={"pixels": sample["pixels"]})
        assert answer.status_code == 200 and len(answer.json()["probabilities"]) == 10
        # (a picture over SMALL_PIXELS: a smaller one is read without the pool)
        canvas = data_url(canvas_of(mnist.test_images[0]).resize((600, 600)))
        refused = alone.post("/api/predict", json={"image": canvas})
        assert refused.status_code == 503 and "too many pictures" in refused.json()["error"]
        assert alone.get("/api/model").json()["n_parameters"] == 13_002
        assert alone.get("/api/neuron?layer=1&index=0").status_code == 404


@pytest.mark.parametrize("query", ["digit=10", "digit=-1", "digit=seven"])
def test_bad_sample_queries(client, query):
    response = client.get(f"/api/sample?{query}")
    assert response.status_code == 422 and "digit" in response.json()["error"]


@pytest.mark.parametrize("query", ["digit=0.0", "digit=07", "digit=1&digit=2", "digit="])
def test_sample_digit_must_be_one_plain_digit(client, query):
    response = client.get(f"/api/sample?{query}")
    assert response.status_code == 422 and "digit" in response.json()["error"]


def test_pixels_must_be_numbers_not_booleans(client):
    response = client.post("/api/predict", json={"pixels": [True] * 784})
    assert response.status_code == 422 and "valid number" in response.json()["error"]


def test_preprocess_steps(client, mnist):
    """Every step from a canvas to the input, and the input is the one predict uses."""
    url = data_url(canvas_of(mnist.test_images[0]))
    body = client.post("/api/preprocess", json={"image": url}).json()
    assert body["input"] == client.post("/api/predict", json={"image": url}).json()["input"]
    top, left, bottom, right = body["bounds"]
    assert body["size"] == [280, 280] and 0 <= top < bottom <= 280 and 0 <= left < right <= 280
    crop = Image.open(io.BytesIO(base64.b64decode(body["ink"].split(",", 1)[1])))
    assert crop.size == (right - left, bottom - top) and np.asarray(crop).max() == 255
    box = np.array(body["box"])
    assert max(box.shape) == 20 and box.max() == pytest.approx(1)
    t, lft = body["offset"]
    field = np.array(body["input"]).reshape(28, 28)
    assert np.allclose(field[t : t + box.shape[0], lft : lft + box.shape[1]], box, atol=1e-4)
    assert body["pen"] in ("kept", "thickened", "thinned", "shrunk") and body["stroke"] > 0
    blank = data_url(Image.new("RGBA", (280, 280), "white"))
    answer = client.post("/api/preprocess", json={"image": blank})
    assert answer.status_code == 422 and "no ink" in answer.json()["error"]
    assert client.post("/api/preprocess", json={"pixels": [0] * 784}).status_code == 422


def test_training_options_serve_each_settings_help_and_the_pace(client):
    from digitnet.settings import SETTINGS

    options = client.get("/api/train").json()
    assert options["help"]["loss"] == SETTINGS["loss"].help
    assert set(options["help"]) == set(options["defaults"])
    assert options["defaults"]["pace"] == 0 and options["limits"]["pace"] == 10


@pytest.mark.parametrize("pace", [-1, 10.5, "1", True, None])
def test_a_bad_pace_is_refused_by_name_before_any_training(client, pace):
    response = client.post("/api/train", json={"epochs": 1, "pace": pace})
    assert response.status_code == 422 and response.json()["field"] == "pace"
    expected = "pace: expected seconds between epochs, a number 0-10, got "
    assert response.json()["error"].startswith(expected)
    assert client.get("/api/train").json()["running"] is None


def test_the_worker_keeps_the_pace_between_epochs():
    """Two epochs of a 784-10 network at a pace of 0.6 s: the second epoch's line comes
    at least 0.6 s after the first, however fast the machine trains."""
    import subprocess
    import sys
    import time

    request = {"sizes": [784, 10], "epochs": 2, "validation": 0, "kernel": "numpy", "pace": 0.6}
    arrivals = []
    with subprocess.Popen(
        [sys.executable, "-m", "digitnet.server.worker", json.dumps(request)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as process:  # fmt: skip
        for line in process.stdout:
            arrivals.append((json.loads(line)["event"], time.monotonic()))
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    assert [name for name, _ in arrivals] == ["epoch", "epoch", "done"]
    assert arrivals[1][1] - arrivals[0][1] >= 0.6 - 0.05  # the pipe's own delay aside


def test_predict_says_when_it_is_probably_not_a_digit(client, mnist):
    seven = (mnist.test_images[0] / 255).tolist()
    digit = client.post("/api/predict", json={"pixels": seven}).json()
    assert digit["not_a_digit"] is False and digit["reason"] is None
    dot = np.zeros((28, 28))
    dot[13:16, 13:16] = 1
    answer = client.post("/api/predict", json={"pixels": dot.reshape(-1).tolist()}).json()
    assert answer["not_a_digit"] is True and answer["reason"].startswith("it is a dot")
    assert answer["digit"] in range(10)  # the network still picks one


def test_a_nudge_can_go_on_until_the_network_is_sure(client, mnist):
    """Left out, "until" stops at the first step the target wins (often a near tie);
    with until 0.9 the nudge goes on until the network gives the target 90%."""
    pixels = (mnist.test_images[1] / 255).tolist()  # a 2
    first = client.post("/api/nudge", json={"pixels": pixels, "target": 5}).json()
    sure = client.post("/api/nudge", json={"pixels": pixels, "target": 5, "until": 0.9}).json()
    assert first["digit"] == sure["digit"] == 5
    assert first["probabilities"][5] < 0.9 <= sure["probabilities"][5]
    assert sure["steps"] > first["steps"] and sure["l2"] > first["l2"]
    again = client.post("/api/predict", json={"pixels": sure["pixels"]}).json()
    assert again["probabilities"][5] >= 0.9  # the very input, read again
    for until in (0, 1, 1.5, "high"):
        response = client.post("/api/nudge", json={"pixels": pixels, "target": 5, "until": until})
        assert response.status_code == 422 and "until" in response.json()["error"]


def test_a_neurons_top_images_carry_their_digit(client, mnist):
    top = client.get("/api/neuron", params={"layer": 3, "index": 7}).json()["top"]
    assert [t["label"] for t in top] == [int(mnist.test_labels[t["index"]]) for t in top]
    assert sum(t["label"] == 7 for t in top) >= 8  # output 7 answers 7s most
