"""How it learns, through the API and the CLI: /api/gradient, /api/step, /api/minibatch
and /api/landscape answer the library's own arrays (``inspect.learning``,
``inspect.landscape``) for the same input, a stepped model's file holds exactly
θ − lr·∇C, and the slow answers come from the server's cache the second time."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from conftest import cli
from digitnet.files.modelfile import load
from digitnet.inspect import landscape as landscapes
from digitnet.inspect import learning
from digitnet.server.routes.learning import MAX_STEPS


@pytest.fixture(scope="module")
def example(mnist):
    """The first MNIST test image: its 784 pixels in [0, 1] and its label."""
    return (mnist.test_images[0] / 255).tolist(), int(mnist.test_labels[0])


def served(client):
    """The served network and the loss its gradients are taken under."""
    model = client.app.state.server.models.lookup(None)
    return model.network, learning.model_loss(model.network, model.info)


def test_the_loss_is_the_records_or_follows_the_output(trained):
    net = trained[0]
    assert net.output_name == "softmax"
    assert learning.model_loss(net, {}) == "cross-entropy"
    assert learning.model_loss(net, {"loss": "quadratic"}) == "quadratic"
    assert learning.model_loss(net, {"config": {"loss": "quadratic"}}) == "quadratic"
    sigmoid = net.copy()
    sigmoid.output_name = "sigmoid"
    assert learning.model_loss(sigmoid, {}) == "quadratic"


def test_gradient_answers_the_librarys_wishes(client, example):
    pixels, label = example
    net, loss = served(client)
    response = client.post("/api/gradient", json={"pixels": pixels, "label": label})
    assert response.status_code == 200, response.text
    got = response.json()
    want = learning.wishes(net, np.array(pixels, dtype=np.float32), label, loss)
    assert got["loss"] == loss == "cross-entropy" and got["label"] == label
    assert got["cost"] == want.cost and got["digit"] == want.digit
    assert got["probabilities"] == want.probabilities
    for name in ("deltas", "wants", "weight_nudges"):
        assert len(got[name]) == len(getattr(want, name))
        for g, w in zip(got[name], getattr(want, name), strict=True):
            np.testing.assert_array_equal(np.array(g), w)
    assert got["top"] == want.top and len(got["top"]) == learning.TOP
    # the outputs' wish is y - a: the label wants up, the others down
    outputs = np.array(got["deltas"][-1])
    assert outputs[label] > 0 and (np.delete(outputs, label) < 0).all()


def test_gradient_reads_a_picture_as_predict_does(client, example):
    pixels, label = example
    picture = Image.fromarray(np.uint8(np.array(pixels).reshape(28, 28) * 255))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    seen = client.post("/api/predict", json={"image": url}).json()["input"]
    got = client.post("/api/gradient", json={"image": url, "label": label}).json()
    net, loss = served(client)
    want = learning.wishes(net, np.array(seen, dtype=np.float32), label, loss)
    np.testing.assert_allclose(got["deltas"][-1], want.deltas[-1], atol=1e-4)


@pytest.mark.parametrize("path", ["/api/gradient", "/api/step"])
def test_a_blank_picture_is_refused(client, path):
    buffer = io.BytesIO()
    Image.new("L", (280, 280), 255).save(buffer, format="PNG")  # white paper, no ink
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = client.post(path, json={"image": url, "label": 3})
    assert response.status_code == 422, response.text
    assert "\n" not in response.json()["error"]


def test_a_step_is_a_new_model_holding_theta_minus_lr_grad(client, example, tmp_path):
    pixels, label = example
    net, loss = served(client)
    before = net.params.copy()
    target = (label + 1) % 10  # a label the network does not give: a big step
    response = client.post("/api/step", json={"pixels": pixels, "label": target, "lr": 0.5})
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["model"].startswith("step-")
    np.testing.assert_array_equal(net.params, before)  # the served one is untouched
    wish = learning.wishes(net, np.array(pixels, dtype=np.float32), target, loss)
    file = client.get(f"/api/models/{got['model']}/file")
    assert file.status_code == 200
    (tmp_path / "step.safetensors").write_bytes(file.content)
    stepped = load(tmp_path / "step.safetensors")
    np.testing.assert_array_equal(stepped.network.params, net.params - 0.5 * wish.grad)
    assert stepped.info["step"] == {"source": "served", "label": target, "lr": 0.5, "loss": loss}
    assert got["cost_before"] == wish.cost and got["digit_before"] == wish.digit
    assert got["cost_after"] < got["cost_before"]
    listed = {m["id"]: m for m in client.get("/api/models").json()}
    assert listed[got["model"]]["step"]["source"] == "served"


def test_steps_chain_from_the_stepped_weights(client, example):
    pixels, label = example
    first = client.post("/api/step", json={"pixels": pixels, "label": label}).json()
    body = {"pixels": pixels, "label": label, "model": first["model"], "lr": 2.0}
    second = client.post("/api/step", json=body).json()
    assert second["model"] != first["model"]
    assert second["cost_before"] == first["cost_after"]
    models = client.app.state.server.models
    one, two = models.lookup(first["model"]), models.lookup(second["model"])
    x = np.array(pixels, dtype=np.float32)
    grad = learning.wishes(one.network, x, label, "cross-entropy").grad
    np.testing.assert_array_equal(two.network.params, one.network.params - 2.0 * grad)
    assert two.info["step"]["source"] == first["model"]


def test_old_steps_make_way_and_their_ids_are_not_reused(client, example):
    pixels, label = example
    body = {"pixels": pixels, "label": label, "lr": 0.01}
    made = [client.post("/api/step", json=body).json()["model"] for _ in range(MAX_STEPS + 2)]
    numbers = [int(m.removeprefix("step-")) for m in made]
    assert numbers == sorted(set(numbers))  # new ids, rising
    ids = [m["id"] for m in client.get("/api/models").json()]
    assert ids[0] == "served"
    assert [i for i in ids if i.startswith("step-")] == made[-MAX_STEPS:]
    gone = client.post("/api/step", json={**body, "model": made[0]})
    assert gone.status_code == 422 and f"no model {made[0]!r}" in gone.json()["error"]


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/api/gradient", {"label": 10}, "label must be a digit 0-9, got 10"),
        ("/api/gradient", {"label": 3, "pixels": [0.0] * 784}, "the picture is blank"),
        ("/api/gradient", {}, "label: Field required"),
        ("/api/gradient", {"label": 3, "model": "nope"}, "model: no model 'nope'"),
        ("/api/step", {"label": 3, "lr": -1}, "lr: Input should be greater than 0"),
        ("/api/minibatch", {"sizes": [0]}, "each batch size must be 1-60000, got 0"),
        ("/api/minibatch", {"sizes": [1], "model": "nope"}, "model: no model 'nope'"),
        ("/api/landscape", {"size": 4}, "size must be an odd whole number 5-41, got 4"),
        ("/api/landscape", {"span": -1}, "span: Input should be greater than 0"),
        ("/api/landscape", {"model": "nope"}, "model: no model 'nope'"),
    ],
)
def test_bad_requests_are_refused_naming_the_problem(client, example, path, body, message):
    if path in ("/api/gradient", "/api/step") and "pixels" not in body:
        body = {"pixels": example[0], **body}
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]


def test_minibatch_answers_the_library_and_is_kept(client, monkeypatch):
    net, loss = served(client)
    cache = client.app.state.server.learning_cache()
    body = {"sizes": [1, 100, 60_000], "seed": 3}
    got = client.post("/api/minibatch", json=body)
    assert got.status_code == 200, got.text
    got = got.json()
    want = learning.minibatches(net, cache, loss, [1, 100, 60_000], seed=3).to_json()
    assert got == want
    assert got["batches"][-1]["cosine"] == pytest.approx(1, abs=1e-9)
    assert sorted(got["batches"][-1]["indices"]) == list(range(60_000))
    calls = []
    real = learning.minibatches
    monkeypatch.setattr(learning, "minibatches", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert client.post("/api/minibatch", json=body).json() == got
    assert calls == []  # answered from the cache
    client.post("/api/minibatch", json={**body, "seed": 4})
    assert len(calls) == 1  # a new question is computed


def test_landscape_answers_the_library_and_is_kept(client, monkeypatch):
    net, loss = served(client)
    cache = client.app.state.server.learning_cache()
    calls = []
    real = landscapes.grid_costs
    monkeypatch.setattr(landscapes, "grid_costs", lambda *a: calls.append(1) or real(*a))
    body = {"size": 5, "span": 0.5, "seed": 1}
    got = client.post("/api/landscape", json=body)
    assert got.status_code == 200, got.text
    got = got.json()
    assert len(calls) == 1 and "path" not in got
    want = landscapes.landscape(net, cache, loss, size=5, span=0.5, seed=1)
    assert len(calls) == 1  # the library's call was answered from the server's cache
    assert got["alphas"] == want.alphas.tolist() == [-0.5, -0.25, 0.0, 0.25, 0.5]
    np.testing.assert_array_equal(np.array(got["cost"]), want.cost)
    for g, w in zip(got["directions"], want.directions, strict=True):
        assert len(g) == net.n_parameters
        np.testing.assert_array_equal(np.array(g), w)
    assert client.post("/api/landscape", json=body).json() == got
    assert len(calls) == 1


@pytest.mark.parametrize("kind", ["gradient", "minibatch", "landscape"])
def test_plot_writes_a_png(trained, tmp_path, kind):
    out = tmp_path / f"{kind}.png"
    extra = ["--label", "7", "--index", "0"] if kind == "gradient" else ["--seed", "1"]
    done = cli("plot", kind, trained[1], "--out", out, *extra)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_gradient_needs_a_label(trained, tmp_path):
    done = cli("plot", "gradient", trained[1], "--out", tmp_path / "g.png")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--label" in lines[0]
