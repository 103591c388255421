"""The neuron explorer: input gradients against finite differences, knock-outs against
a network built by hand without the neuron, top images against a brute-force ranking,
nudges that really fool the network; the plots, the CLI and the API on top."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import cli
from digitnet.files.modelfile import Model
from digitnet.inspect import explore
from digitnet.learn.knockout import check_neuron, forward, trace
from digitnet.learn.network import Network
from digitnet.server import create_app
from test_plots import assert_picture


@pytest.fixture(scope="module")
def net64(trained):
    """The trained network in float64, for finite differences."""
    net, _ = trained
    return Network.from_arrays(
        [W.astype(np.float64) for W in net.W], [b.astype(np.float64) for b in net.b]
    )


def finite_difference(J, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """(J(x + h e_i) - J(x - h e_i)) / 2h for every pixel i: (784,)."""
    grad = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (J(x + e) - J(x - e)) / (2 * h)
    return grad


@pytest.mark.parametrize(
    "layer, index, knockout",
    [(1, 3, []), (2, 5, []), (2, 5, [(1, 0), (1, 7)]), (3, 7, []), (3, 2, [(2, 4)])],
)
def test_neuron_gradient_matches_finite_differences(net64, mnist, layer, index, knockout):
    x = np.clip(mnist.test_images[1] / 255 + 0.05, 0, 1)

    def J(x):
        return explore.neuron_gradient(net64, x[None], layer, index, knockout)[0][0]

    _, grad = explore.neuron_gradient(net64, x[None], layer, index, knockout)
    numeric = finite_difference(J, x)
    assert np.abs(grad[0]).max() > 1e-3  # a gradient worth checking
    np.testing.assert_allclose(grad[0], numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("target, knocked", [(3, []), (8, [(1, 4), (2, 2)])])
def test_nudge_gradient_matches_finite_differences(net64, mnist, target, knocked):
    x = np.clip(mnist.test_images[0] / 255 + 0.05, 0, 1)

    def C(x):
        return explore.cost_gradient(net64, x[None], target, knocked)[1][0]

    _, cost, grad = explore.cost_gradient(net64, x[None], target, knocked)
    assert cost[0] == pytest.approx(-np.log(forward(net64, x, knocked).a[-1][0, target]))
    np.testing.assert_allclose(grad[0], finite_difference(C, x), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("layer, index", [(1, 0), (1, 15), (2, 3), (2, 15)])
def test_knockout_equals_a_network_without_that_neurons_outgoing_weights(
    trained, mnist, layer, index
):
    net, _ = trained
    x = mnist.test_images[:500]
    by_hand = net.copy()
    by_hand.W[layer][:, index] = 0  # what neuron (layer, index) sends on: its row of Wᵀ
    knocked = trace(net, x, [(layer, index)])
    expected = by_hand.trace(x)
    np.testing.assert_allclose(knocked[-1], expected[-1], rtol=1e-5, atol=1e-6)
    assert np.all(knocked[layer][:, index] == 0)
    others = np.arange(net.sizes[layer]) != index
    np.testing.assert_allclose(knocked[layer][:, others], expected[layer][:, others], rtol=1e-6)
    assert not np.allclose(knocked[-1], net.trace(x)[-1], atol=1e-3)  # it changed something


def test_knockout_table_is_each_neuron_knocked_out_by_hand(trained, mnist):
    net, _ = trained
    images, labels = mnist.test_images[:2000], mnist.test_labels[:2000]
    table = explore.knockout_table(net, images, labels)
    assert len(table.neurons) == 32 and table.per_digit.shape == (32, 10)
    assert table.base_accuracy == pytest.approx(np.mean(net.predict(images) == labels))
    for row in (0, 9, 20, 31):
        layer, index = table.neurons[row]
        by_hand = net.copy()
        by_hand.W[layer][:, index] = 0
        guess = by_hand.predict(images)
        assert table.accuracy[row] == pytest.approx(np.mean(guess == labels))
        for d in range(10):
            mine = labels == d
            assert table.per_digit[row, d] == pytest.approx(np.mean(guess[mine] == d))
    assert table.lost.max() > 0.05  # some neuron some digit needs


def test_top_images_equal_a_brute_force_ranking(trained, mnist):
    net, _ = trained
    images = mnist.test_images[:1500]
    top = explore.top_images(net, images, k=9)
    every = [np.stack(layer) for layer in zip(*(net.trace(x) for x in images), strict=True)]
    for layer in (1, 2, 3):
        acts = every[layer]  # (N, n_l), one image at a time
        indices, values = top[layer - 1]
        assert indices.shape == values.shape == (net.sizes[layer], 9)
        for j in range(net.sizes[layer]):
            ranked = sorted(range(len(images)), key=lambda i: (-acts[i, j], i))[:9]
            np.testing.assert_allclose(values[j], acts[ranked, j], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(values[j], acts[indices[j], j], rtol=1e-5, atol=1e-7)
            assert np.all(np.diff(values[j]) <= 1e-7)  # highest first
            gaps = np.diff(np.sort(acts[:, j])[::-1][:10])
            if np.all(gaps < -1e-5):  # no near-ties: the very same images, in order
                assert indices[j].tolist() == ranked


def test_wants_is_the_positive_part_of_the_weights_for_layer_one(trained):
    net, _ = trained
    wanted = explore.wants(net, 1)
    expected = np.clip(net.W[0] / explore.WANTS_L2, 0, 1)
    np.testing.assert_allclose(wanted, expected, atol=1e-5)


@pytest.mark.parametrize("layer, index", [(2, 4), (3, 7)])
def test_wants_raises_the_neuron_within_the_pixel_range(trained, layer, index):
    net, _ = trained
    x = explore.wants(net, layer, index)
    assert x.shape == (784,) and x.min() >= 0 and x.max() <= 1
    before = trace(net, np.zeros(784, np.float32))[layer][index]
    after = trace(net, x)[layer][index]
    assert after > before and after > 0.8


@pytest.mark.parametrize("index, target", [(0, 8), (1, 3), (2, 7), (4, 9)])
def test_nudge_is_read_as_the_target(trained, mnist, index, target):
    net, _ = trained
    x = mnist.test_images[index] / 255
    done = explore.nudge(net, x, target)
    assert int(net.predict(done.pixels)) == target == done.digit
    assert done.pixels.min() >= 0 and done.pixels.max() <= 1
    change = done.pixels - x
    assert done.linf == pytest.approx(np.abs(change).max(), abs=1e-6)
    assert done.l2 == pytest.approx(np.linalg.norm(change), abs=1e-5)
    assert 0 < done.steps and done.l2 <= done.steps * explore.NUDGE_STEP + 1e-6
    with pytest.raises(explore.NudgeFailed, match=f"budget of {done.steps - 1} steps"):
        explore.nudge(net, x, target, max_steps=done.steps - 1)  # the first step that flips


def test_nudge_of_what_it_already_says_changes_nothing(trained, mnist):
    net, _ = trained
    done = explore.nudge(net, mnist.test_images[0] / 255, 7)
    assert done.steps == 0 and done.linf == 0 and done.digit == 7


def test_bad_neurons_and_targets_are_named(trained):
    net, _ = trained
    with pytest.raises(ValueError, match=r"layer must be 1-3 .* got 0"):
        check_neuron(net, 0, 0)
    with pytest.raises(ValueError, match="index must be 0-9 for layer 3, got 10"):
        check_neuron(net, 3, 10)
    with pytest.raises(ValueError, match="only hidden neurons .* layer must be 1-2, got 3"):
        trace(net, np.zeros(784), [(3, 1)])
    with pytest.raises(ValueError, match="target must be a digit 0-9, got 10"):
        explore.nudge(net, np.zeros(784), 10)


# -- the CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["neurons"],
        ["neurons", "--layer", "3"],
        ["knockout"],
        ["nudge", "--index", "1", "--target", "8"],
    ],
)
def test_explorer_plots(trained, tmp_path, args):
    _, model = trained
    out = tmp_path / "plot.png"
    result = cli("plot", args[0], model, *args[1:], "--out", out)
    assert result.returncode == 0, result.stderr
    assert_picture(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["neurons", "--layer", "4"], "--layer must be 1-3"),
        (["nudge", "--index", "1"], "nudge plots need --target"),
        (["nudge", "--target", "12"], "target must be a digit 0-9, got 12"),
        (["knockout", "--target", "3"], "--target does not apply to knockout plots"),
        (["weights", "--layer", "2"], "--layer does not apply to weights plots"),
    ],
)
def test_explorer_plot_errors_are_one_line(trained, tmp_path, args, message):
    _, model = trained
    out = tmp_path / "plot.png"
    result = cli("plot", args[0], model, *args[1:], "--out", out)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_network_without_hidden_layers(tmp_path):
    from digitnet.files.modelfile import save

    path = tmp_path / "flat.safetensors"
    save(path, Network((784, 10), rng=np.random.default_rng(0)))
    result = cli("plot", "knockout", path, "--out", tmp_path / "k.png")
    assert result.returncode == 2
    assert "a 784-10 network has no hidden neurons to knock out" in result.stderr
    result = cli("plot", "neurons", path, "--out", tmp_path / "n.png")  # the outputs
    assert result.returncode == 0, result.stderr
    assert_picture(tmp_path / "n.png")


# -- the API --------------------------------------------------------------------------------


def test_neuron_answers_what_the_library_computes(client, trained, mnist):
    net, _ = trained
    body = client.get("/api/neuron", params={"layer": 1, "index": 4}).json()
    assert (body["layer"], body["index"]) == (1, 4)
    np.testing.assert_allclose(body["weights"], net.W[0][4], atol=1e-5)
    assert body["bias"] == pytest.approx(float(net.b[0][4]), abs=1e-5)
    indices, values = explore.top_images(net, mnist.test_images)[0]
    assert [t["index"] for t in body["top"]] == indices[4].tolist()
    np.testing.assert_allclose([t["activation"] for t in body["top"]], values[4], atol=1e-6)
    assert all(t["image"].startswith("data:image/png;base64,") for t in body["top"])
    np.testing.assert_allclose(body["wants"], explore.wants(net, 1, 4), atol=1e-4)
    by_hand = net.copy()
    by_hand.W[1][:, 4] = 0
    guess = by_hand.predict(mnist.test_images)
    assert body["knockout"]["accuracy"] == pytest.approx(np.mean(guess == mnist.test_labels))
    assert len(body["knockout"]["per_digit"]) == 10
    output = client.get("/api/neuron", params={"layer": 3, "index": 7}).json()
    assert "knockout" not in output and len(output["weights"]) == 16
    assert [mnist.test_labels[t["index"]] for t in output["top"]].count(7) >= 8


@pytest.mark.parametrize(
    "query, message",
    [
        ("layer=0&index=0", "layer must be 1-3 (1 = the first hidden layer, 3 = the outputs)"),
        ("layer=4&index=1", "layer must be 1-3"),
        ("layer=2&index=16", "index must be 0-15 for layer 2, got 16"),
        ("layer=3&index=-1", "index must be 0-9 for layer 3, got -1"),
        ("layer=one&index=1", "query.layer"),
    ],
)
def test_neuron_out_of_range_is_422_naming_the_range(client, query, message):
    response = client.get("/api/neuron?" + query)
    assert response.status_code == 422
    assert message in response.json()["error"]


def test_predict_with_knockouts(client, trained, mnist):
    net, _ = trained
    pixels = (mnist.test_images[0] / 255).tolist()
    knockout = [[1, 4], [2, 2]]
    body = client.post("/api/predict", json={"pixels": pixels, "knockout": knockout}).json()
    assert body["activations"][1][4] == 0 and body["activations"][2][2] == 0
    by_hand = net.copy()
    by_hand.W[1][:, 4] = 0
    by_hand.W[2][:, 2] = 0
    np.testing.assert_allclose(body["activations"][-1], by_hand.forward(pixels), atol=1e-5)
    plain = client.post("/api/predict", json={"pixels": pixels}).json()
    assert plain["activations"][1][4] > 0
    for bad, message in [
        ([[3, 0]], "layer must be 1-2, got 3"),
        ([[1, 16]], "index must be 0-15"),
        ([[1]], "knockout.0"),
    ]:
        response = client.post("/api/predict", json={"pixels": pixels, "knockout": bad})
        assert response.status_code == 422 and message in response.json()["error"]


def test_nudge_answer_is_read_as_the_target_when_sent_back(client, mnist):
    pixels = (mnist.test_images[1] / 255).tolist()
    body = client.post("/api/nudge", json={"pixels": pixels, "target": 3}).json()
    assert body["digit"] == 3 and len(body["pixels"]) == 784
    assert 0 <= min(body["pixels"]) and max(body["pixels"]) <= 1
    change = np.array(body["pixels"]) - np.array(pixels, dtype=np.float32)
    assert body["linf"] == pytest.approx(np.abs(change).max(), abs=1e-5)
    assert body["l2"] == pytest.approx(np.linalg.norm(change), abs=1e-4)
    assert body["steps"] > 0
    again = client.post("/api/predict", json={"pixels": body["pixels"]}).json()
    assert again["digit"] == 3
    np.testing.assert_allclose(again["probabilities"], body["probabilities"], atol=1e-5)


def test_nudge_refusals(client, trained, mnist):
    net, _ = trained
    never_one = net.copy()  # output 1 hears nothing and has a bias of -100: it never wins
    never_one.W[2][1] = 0
    never_one.b[2][1] = -100
    pixels = (mnist.test_images[3] / 255).tolist()
    with TestClient(
        create_app(Model(never_one, {}), samples=(mnist.test_images[:50], mnist.test_labels[:50]))
    ) as other:
        response = other.post("/api/nudge", json={"pixels": pixels, "target": 1})
    assert response.status_code == 422
    assert "budget of 1000 steps of L2 length 0.02" in response.json()["error"]
    for body, message in [
        ({"pixels": pixels, "target": 10}, "target must be a digit 0-9, got 10"),
        ({"pixels": pixels}, "target"),
        ({"target": 3}, "exactly one of"),
        ({"pixels": pixels, "target": 3, "knockout": [[3, 0]]}, "layer must be 1-2"),
    ]:
        response = client.post("/api/nudge", json=body)
        assert response.status_code == 422 and message in response.json()["error"]


def test_an_unknown_model_is_named(client, mnist):
    response = client.get("/api/neuron", params={"layer": 1, "index": 0, "model": "other"})
    assert response.status_code == 404 and "no model 'other'" in response.json()["error"]
    pixels = (mnist.test_images[0] / 255).tolist()
    body = {"pixels": pixels, "target": 3, "model": "other"}
    response = client.post("/api/nudge", json=body)
    assert response.status_code == 422 and "model: no model 'other'" in response.json()["error"]


def test_each_network_has_its_own_cache(trained, mnist):
    from digitnet.server import atlases

    net, _ = trained
    atlas = atlases(mnist.test_images[:300], mnist.test_labels[:300])
    other = net.copy()
    other.W[0][...] = -other.W[0]
    assert atlas(net) is atlas(net)
    assert atlas(other) is not atlas(net)
    mine, theirs = atlas(net).top()[0][0], atlas(other).top()[0][0]
    assert not np.array_equal(mine, theirs)
