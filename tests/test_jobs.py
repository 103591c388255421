"""Training requests and the model registry: what a request may ask for, every bad
request refused with the field named (through the framework's test client, which
starts no training), and the registry's ids, lookups, folder and bounds."""

import json
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient

from digitnet.config import TrainConfig
from digitnet.files.modelfile import Model, load, save
from digitnet.files.paths import OutputError
from digitnet.learn.network import Network
from digitnet.server import create_app
from digitnet.server.budget import WORK_BUDGET
from digitnet.server.jobs import FIELDS, RequestError, defaults, train_config
from digitnet.server.models import MAX_MODELS, SERVED, Models, UnknownModel, check_folder
from digitnet.settings import SETTINGS

#: The page's bounds, as declared beside each setting.
PAGE_EPOCHS = SETTINGS["epochs"].page.high
MAX_HIDDEN_LAYERS = SETTINGS["sizes"].page.hidden_layers
MAX_HIDDEN_WIDTH = SETTINGS["sizes"].page.hidden_width


@pytest.fixture(scope="module")
def client(trained, mnist):
    _, path = trained
    app = create_app(load(path), samples=(mnist.test_images[:100], mnist.test_labels[:100]))
    with TestClient(app) as client:
        yield client


def tiny(seed: int = 0, sizes=(784, 3, 10), activation="sigmoid") -> Model:
    net = Network(sizes, activation, rng=np.random.default_rng(seed))
    return Model(net, {"test_accuracy": 0.5})


# -- requests ----------------------------------------------------------------------------


def test_an_empty_request_is_the_default_run():
    assert train_config({}) == TrainConfig(kernel="auto")
    assert defaults() == {name: TrainConfig().to_dict()[name] for name in FIELDS}


def test_every_field_is_taken():
    body = {
        "sizes": [784, 100, 30, 10],
        "activation": "relu",
        "output": "sigmoid",
        "loss": "quadratic",
        "optimizer": "momentum",
        "lr": 0.1,
        "batch_size": 64,
        "epochs": 3,
        "augment": 0,
        "weight_decay": 0,
        "seed": 7,
    }
    config = train_config(body)
    assert set(body) == set(FIELDS)
    assert {name: getattr(config, name) for name in body} == {**body, "sizes": (784, 100, 30, 10)}
    assert train_config({"sizes": [784, 10]}).sizes == (784, 10)  # no hidden layer
    assert train_config({"lr": 1}).lr == 1.0  # a whole number is a number


BAD = [
    ("sizes", "16,16", "expected a list of whole numbers"),
    ("sizes", [784, 16.5, 10], "expected a list of whole numbers"),
    ("sizes", [784, True, 10], "expected a list of whole numbers"),
    ("sizes", [16, 16], "expected 784, the hidden layers, then 10"),
    ("sizes", [784, 16, 9], "expected 784, the hidden layers, then 10"),
    ("sizes", [784], "expected 784, the hidden layers, then 10"),
    ("sizes", [784] + [8] * (MAX_HIDDEN_LAYERS + 1) + [10], f"at most {MAX_HIDDEN_LAYERS} hidden"),
    ("sizes", [784, MAX_HIDDEN_WIDTH + 1, 10], f"hidden layers of 1-{MAX_HIDDEN_WIDTH} neurons"),
    ("sizes", [784, 0, 10], f"hidden layers of 1-{MAX_HIDDEN_WIDTH} neurons"),
    ("activation", "softplus", "expected one of relu, sigmoid, tanh"),
    ("activation", 1, "expected one of relu, sigmoid, tanh"),
    ("output", "linear", "expected one of sigmoid, softmax"),
    ("loss", "hinge", "expected one of quadratic, cross-entropy"),
    ("optimizer", "rmsprop", "expected one of adam, momentum, sgd"),
    ("lr", 0, "expected a positive number"),
    ("lr", -0.1, "expected a positive number"),
    ("lr", "0.1", "expected a positive number"),
    ("lr", None, "expected a positive number"),
    ("weight_decay", -1, "expected a number, zero or more"),
    ("batch_size", 0, "expected a whole number 1-1024"),
    ("batch_size", 32.0, "expected a whole number 1-1024"),
    ("batch_size", 5000, "expected a whole number 1-1024"),
    ("epochs", 0, "expected a whole number 1-100"),
    ("epochs", PAGE_EPOCHS + 1, "expected a whole number 1-100"),
    ("epochs", True, "expected a whole number 1-100"),
    ("augment", -1, "expected a whole number 0-4"),
    ("augment", 5, "expected a whole number 0-4"),
    ("seed", -1, "expected a whole number 0-4294967295"),
    ("seed", "x", "expected a whole number 0-4294967295"),
]


@pytest.mark.parametrize(("name", "value", "expected"), BAD)
def test_bad_settings_are_refused_by_name(name, value, expected):
    with pytest.raises(RequestError, match=f"^{name}: ") as caught:
        train_config({name: value})
    assert caught.value.field == name
    assert expected in str(caught.value)


def test_unknown_settings_and_bodies_are_refused():
    with pytest.raises(RequestError, match="^kernel: not a training setting; expected any of"):
        train_config({"kernel": "compiled"})
    with pytest.raises(RequestError, match="^body: expected a JSON object"):
        train_config([1, 2])


@pytest.mark.parametrize(("name", "value", "expected"), BAD)
def test_the_api_names_the_bad_field(client, name, value, expected):
    response = client.post("/api/train", json={name: value})
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == name
    assert body["error"].startswith(f"{name}: ") and expected in body["error"]


@pytest.mark.parametrize(
    ("content", "status", "fragment"),
    [
        (b"{", 400, "malformed JSON body"),
        (b"", 400, "malformed JSON body"),
        (b"\xff\xfe", 400, "malformed JSON body"),
        (b"[]", 422, "body: expected a JSON object"),
        (b'"epochs"', 422, "body: expected a JSON object"),
        (b'{"epochs": 2, "validation": 0}', 422, "validation: not a training setting"),
        (b'{"lr": NaN}', 422, "lr: expected a positive number"),
        (b'{"lr": Infinity}', 422, "lr: expected a positive number"),
        (b'{"name": ""}', 422, "name: expected a text of 1-40 characters, got ''"),
        (b'{"name": 7}', 422, "name: expected a text of 1-40 characters, got 7"),
        (b'{"name": "' + b"x" * 41 + b'"}', 422, "name: expected a text of 1-40"),
        (b'{"name": "a\\u0000b"}', 422, "name: expected a text of 1-40 characters"),
    ],
)
def test_the_api_refuses_bad_bodies(client, content, status, fragment):
    response = client.post(
        "/api/train", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_the_api_says_what_may_be_asked(client):
    body = client.get("/api/train").json()
    assert body["defaults"] == {**defaults(), "pace": 0}  # pace: not a training setting
    assert body["limits"]["epochs"] == PAGE_EPOCHS
    assert body["limits"]["hidden_layers"] == MAX_HIDDEN_LAYERS
    assert body["limits"]["hidden_width"] == MAX_HIDDEN_WIDTH
    assert body["choices"]["activation"] == ["relu", "sigmoid", "tanh"]
    assert body["running"] is None
    assert body["limits"]["work_seconds"] == WORK_BUDGET and body["queue"] == []


def test_unknown_ids_are_refused(client):
    for method, url in [
        ("get", "/api/train/nope/events"),
        ("delete", "/api/train/nope"),
        ("get", "/api/models/nope/file"),
        ("get", "/api/model?model=nope"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 404, url
        assert "nope" in response.json()["error"]
    pixels = [0.0] * 784
    response = client.post("/api/predict", json={"pixels": pixels, "model": "nope"})
    assert response.status_code == 422
    assert response.json()["error"] == "model: no model 'nope'; the models are: served"


def test_the_served_model_is_listed_and_downloads(client, trained, tmp_path, mnist):
    net, _ = trained
    (first,) = client.get("/api/models").json()
    assert first["id"] == SERVED and first["sizes"] == [784, 16, 16, 10]
    assert first["activation"] == "sigmoid" and 0.9 < first["test_accuracy"] <= 1
    response = client.get("/api/models/served/file")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="served.safetensors"'
    (tmp_path / "served.safetensors").write_bytes(response.content)
    again = load(tmp_path / "served.safetensors")
    assert np.array_equal(again.network.params, net.params)
    by_id = client.get("/api/model?model=served").json()
    assert by_id == client.get("/api/model").json()
    pixels = (mnist.test_images[0] / 255).tolist()
    with_id = client.post("/api/predict", json={"pixels": pixels, "model": "served"}).json()
    assert with_id == client.post("/api/predict", json={"pixels": pixels}).json()


# -- the registry ------------------------------------------------------------------------


def test_lookup_finds_the_served_model_first_and_by_id():
    served = tiny(0)
    models = Models(served)
    assert models.lookup(None) is served and models.lookup(SERVED) is served
    other = tiny(1)
    models.put("trained-1", other)
    assert models.lookup("trained-1") is other
    assert models.ids() == [SERVED, "trained-1"]
    assert [s["id"] for s in models.summaries()] == [SERVED, "trained-1"]
    with pytest.raises(UnknownModel, match="no model 'x'; the models are: served, trained-1"):
        models.lookup("x")
    with pytest.raises(UnknownModel):
        models.lookup(["not", "a", "name"])


def test_a_model_in_training_is_found_but_not_listed():
    models = Models(tiny(0))
    models.put("trained-1", tiny(1), listed=False)
    assert models.lookup("trained-1").network.sizes == (784, 3, 10)
    assert models.ids() == [SERVED]
    assert models.new_id() == "trained-2"
    models.put("trained-1", tiny(2))
    assert models.ids() == [SERVED, "trained-1"]
    models.drop("trained-1")
    models.drop(SERVED)  # never forgotten
    assert models.ids() == [SERVED]
    # never handed out again, though trained-1 is gone (it once came back)
    assert models.new_id() == "trained-3" and models.new_id(taken={"trained-9"}) == "trained-10"


def test_ids_are_never_reused_after_eviction_or_failure_nor_across_servers(tmp_path):
    """Ids count on past models let go (after 33 runs the oldest's id once came back),
    and two servers sharing one folder claim theirs there atomically: an empty file,
    which neither loads as a model; the next start counts on from the highest."""
    models = Models(tiny(0))
    handed = [models.new_id() for _ in range(MAX_MODELS + 5)]
    for model_id in handed:
        models.put(model_id, tiny(1))
    assert len(set(handed)) == len(handed) and models.new_id() not in handed
    first, second = Models(tiny(0), tmp_path), Models(tiny(0), tmp_path)
    a, b = first.new_id(claim=True), second.new_id(claim=True)
    assert (a, b) == ("trained-1", "trained-2")  # the second saw the first's claim
    assert (tmp_path / "trained-2.safetensors").stat().st_size == 0
    first.put(a, tiny(2))
    first.save(a)  # b's run failed: its claim stays, so its id is never given again
    later = Models(tiny(0), tmp_path)
    assert later.ids() == [SERVED, "trained-1"] and later.skipped == []
    assert later.new_id(claim=True) == "trained-3"


def test_a_stop_is_felt_within_a_few_batches(mnist):
    """The worker looks for a stop in ``on_batch``, called at least every PIECE_WORK
    weight-touches: 4 batches of 4 hidden layers of 256 at batch 1, not a tenth of the
    epoch (5,500 batches there, 20-24 s, when a stop once waited for it)."""
    from digitnet.train import PIECE_WORK, train_network

    seen = []

    def on_batch(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            raise KeyboardInterrupt  # as the worker does on a stop

    config = TrainConfig(sizes=(784, 256, 256, 256, 256, 10), batch_size=1, epochs=1,
                         validation=100, augment=0, kernel="numpy")  # fmt: skip
    images, labels = mnist.train_images[:2100], mnist.train_labels[:2100]
    _, history = train_network(images, labels, config, on_batch=on_batch)
    piece = PIECE_WORK // (400_906 * (1 + 4))  # P·(B + 4) a batch
    assert piece == 4 and seen == [piece, 2 * piece] and history.stopped == "interrupted"


def test_the_oldest_trained_model_makes_room():
    models = Models(tiny(0))
    for n in range(1, MAX_MODELS + 2):  # MAX_MODELS + 1 trained, with the served one
        models.put(f"trained-{n}", tiny(n))
    ids = models.ids()
    assert len(ids) == MAX_MODELS and ids[0] == SERVED
    assert ids[1] == "trained-3" and ids[-1] == f"trained-{MAX_MODELS + 1}"


def test_a_folder_keeps_models_and_gives_them_back(tmp_path):
    models = Models(tiny(0), tmp_path)
    models.put(models.new_id(), tiny(1))
    path = models.save("trained-1")
    assert path == tmp_path / "trained-1.safetensors"
    assert sorted(os.listdir(tmp_path)) == ["trained-1.safetensors"]  # no temporary left
    save(tmp_path / "bad name!.safetensors", tiny(2).network, {})
    (tmp_path / "broken.safetensors").write_bytes(b"not a model")
    again = Models(tiny(0), tmp_path)
    assert again.ids() == [SERVED, "trained-1"]
    assert np.array_equal(again.lookup("trained-1").network.params, tiny(1).network.params)
    assert len(again.skipped) == 2
    assert any("the name cannot be a model id" in s for s in again.skipped)
    assert any("broken.safetensors" in s for s in again.skipped)
    assert again.new_id() == "trained-2"
    assert Models(tiny(0)).save("served") is None  # no folder: memory only


def test_a_folder_must_exist_and_be_writable(tmp_path):
    with pytest.raises(OutputError, match="no such folder"):
        check_folder(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_folder(tmp_path / "file")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="cannot write"):
            check_folder(locked)
    assert check_folder(tmp_path) == tmp_path


def test_worker_messages_are_json_lines():
    from digitnet.server.worker import decode, encode

    params = np.linspace(-1, 1, 50, dtype=np.float32)
    text = json.dumps({"params": encode(params)})
    assert np.array_equal(decode(json.loads(text)["params"], 50), params)
    with pytest.raises(ValueError, match="expected 49 parameters, got 50"):
        decode(encode(params), 49)
    with pytest.raises(ValueError, match="NaN or infinite"):
        decode(encode(np.array([np.nan], np.float32)), 1)
