"""Training from the API on a real server (``digitnet serve --models DIR`` in its own
process): start a run, follow its server-sent events, predict with the new model,
download and load its file; predictions answered while it trains; a second
browser's run queued behind it; a run stopped; the models folder read again at the
next start; the worker gone with its server."""

import http.client
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, start_server, stop
from digitnet.files.modelfile import load
from digitnet.learn.activations import ACTIVATIONS, LOSSES
from digitnet.learn.optimizers import OPTIMIZERS
from digitnet.server import SHUTDOWN_TIMEOUT
from digitnet.server.worker import NICENESS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def port(trained, folder):
    _, path = trained
    process, port, _ = start_server(path, "--models", folder)
    yield port
    stop(process)


#: Each browser's cookie (its client id), by the name a test gives the browser.
COOKIES: dict[str, str] = {}


def request(port, method, url, body=None, timeout=60, browser="first"):
    """(status, headers, body bytes) of one request to the server, from ``browser``
    (which keeps the cookie the server gives it, as a browser does)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"content-type": "application/json"} if body is not None else {}
    if (port, browser) in COOKIES:
        headers["cookie"] = COOKIES[port, browser]
    connection.request(method, url, None if body is None else json.dumps(body), headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    if response.getheader("set-cookie"):
        COOKIES[port, browser] = response.getheader("set-cookie").split(";")[0]
    return response.status, dict(response.getheaders()), data


def call(port, method, url, body=None, browser="first"):
    status, _, data = request(port, method, url, body, browser=browser)
    return status, json.loads(data)


def events(port, job, timeout=300):
    """The run's server-sent events as (name, data), until done or error."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", f"/api/train/{job}/events")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("content-type").startswith("text/event-stream")
    name = None
    try:
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
                yield name, data
                if name in ("done", "error"):
                    return
    finally:
        connection.close()


def pixels_of(mnist, index):
    return (mnist.test_images[index] / 255).tolist()


def test_train_stream_predict_and_download(port, folder, mnist, tmp_path):
    status, body = call(port, "POST", "/api/train", {"epochs": 2, "seed": 3})
    assert status == 202
    job = body["id"]
    seen = list(events(port, job))
    names = [name for name, _ in seen]
    assert names == ["epoch", "epoch", "done"]
    first, second = seen[0][1], seen[1][1]
    assert {"epoch", "cost", "accuracy", "val_accuracy", "lr", "seconds", "weights"} <= set(first)
    assert [first["epoch"], second["epoch"]] == [1, 2]
    assert first["val_accuracy"] > 0.85 and second["cost"] < first["cost"]
    assert np.shape(first["weights"]) == (16, 784)
    assert first["weights"] != second["weights"]  # the pictures change as it learns
    done = seen[2][1]
    assert done["model"] == job and done["epochs"] == 2 and done["stopped"] == "completed"
    assert 0.85 < done["test_accuracy"] <= 1

    # a client that comes late gets every event again
    assert [name for name, _ in events(port, job)] == names

    status, listed = call(port, "GET", "/api/models")
    assert [m["id"] for m in listed][0] == "served" and job in [m["id"] for m in listed]
    mine = next(m for m in listed if m["id"] == job)
    assert mine["sizes"] == [784, 16, 16, 10] and mine["test_accuracy"] == done["test_accuracy"]

    status, answer = call(
        port, "POST", "/api/predict", {"pixels": pixels_of(mnist, 0), "model": job}
    )
    assert status == 200

    status, headers, data = request(port, "GET", f"/api/models/{job}/file")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    (tmp_path / "mine.safetensors").write_bytes(data)
    model = load(tmp_path / "mine.safetensors")
    assert model.test_accuracy == done["test_accuracy"]
    assert model.info["config"]["seed"] == 3 and model.info["config"]["epochs"] == 2
    assert answer["digit"] == int(model.network.predict(np.array(pixels_of(mnist, 0))))
    output = model.network.forward(np.array(pixels_of(mnist, 0)))
    assert np.allclose(answer["probabilities"], output, atol=1e-5)

    saved = load(folder / f"{job}.safetensors")  # and kept in the folder
    assert np.array_equal(saved.network.params, model.network.params)

    status, info = call(port, "GET", f"/api/model?model={job}")
    assert status == 200 and np.allclose(info["weights"][0], model.network.W[0], atol=1e-5)


def test_predictions_answer_while_it_trains_and_a_second_run_waits(port, mnist):
    """Between the run's first epoch and its end (a run of 50 epochs, stopped by the
    test once it has its answers), predictions are answered, by the served model; a
    second browser's run waits in the queue (it once got 409) and trains after."""
    status, body = call(port, "POST", "/api/train", {"epochs": 50, "sizes": [784, 32, 10]})
    assert status == 202 and body["position"] == 0
    job = body["id"]
    status, waits = call(port, "POST", "/api/train", {"epochs": 1, "sizes": [784, 10]}, "second")
    assert status == 202 and waits["position"] == 1
    status, options = call(port, "GET", "/api/train")
    assert options["running"]["id"] == job and options["running"]["mine"]
    assert [r["id"] for r in options["queue"]] == [job, waits["id"]]

    stream = events(port, job)
    name, first = next(stream)
    assert name == "epoch" and first["epoch"] == 1
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"pixels": pixels_of(mnist, 1)})
    answers = []
    for _ in range(20):
        connection.request("POST", "/api/predict", body, {"content-type": "application/json"})
        response = connection.getresponse()
        answers.append((response.status, json.loads(response.read())["digit"]))
    connection.close()
    status, training = call(port, "GET", "/api/train")
    assert training["running"]["id"] == job  # still training after them
    assert answers == [(200, 2)] * 20  # the served model reads a 2
    status, _ = call(port, "DELETE", f"/api/train/{job}", browser="second")
    assert status == 403  # not the second browser's run
    status, _ = call(port, "DELETE", f"/api/train/{job}")
    assert status == 202
    rest = [name for name, _ in stream]
    assert rest[-1] == "done" and set(rest[:-1]) <= {"epoch"}
    seen = [(name, data) for name, data in events(port, waits["id"])]
    assert seen[0] == ("queued", {"position": 1, "ahead": 1}) and seen[1][0] == "started"
    assert [name for name, _ in seen[2:]] == ["epoch", "done"]  # it trained after
    status, listed = call(port, "GET", "/api/models", browser="second")
    mine = [m["id"] for m in listed if m["mine"]]
    assert mine == [waits["id"]] and [m["id"] for m in listed][1] == waits["id"]


def test_stop_keeps_the_best_weights_so_far(port, mnist):
    status, body = call(port, "POST", "/api/train", {"epochs": 100, "activation": "relu"})
    assert status == 202
    job = body["id"]
    stream = events(port, job)
    name, first = next(stream)
    assert name == "epoch" and first["epoch"] == 1
    status, newest = call(
        port, "POST", "/api/predict", {"pixels": pixels_of(mnist, 0), "model": job}
    )
    assert status == 200 and len(newest["probabilities"]) == 10  # the newest weights answer
    status, listed = call(port, "GET", "/api/models")
    assert job not in [m["id"] for m in listed]  # listed only once it ends
    status, _ = call(port, "GET", f"/api/models/{job}/file")
    assert status == 409
    status, stopped = call(port, "DELETE", f"/api/train/{job}")
    assert status == 202 and stopped == {"id": job, "state": "stopping"}
    rest = list(stream)
    name, done = rest[-1]
    assert name == "done" and done["stopped"] == "interrupted"
    assert done["stopped_by"] == "owner"
    assert 1 <= done["epochs"] < 100 and done["model"] == job
    status, again = call(port, "DELETE", f"/api/train/{job}")
    assert status == 200 and again == {"id": job, "state": "done"}
    status, listed = call(port, "GET", "/api/models")
    mine = next(m for m in listed if m["id"] == job)
    assert mine["activation"] == "relu" and mine["test_accuracy"] > 0.8
    status, answer = call(
        port, "POST", "/api/predict", {"pixels": pixels_of(mnist, 0), "model": job}
    )
    assert status == 200 and answer["digit"] == 7


def test_a_diverging_run_ends_in_an_error_event(port):
    status, body = call(port, "POST", "/api/train", {"epochs": 2, "optimizer": "sgd", "lr": 1e30})
    assert status == 202
    name, data = list(events(port, body["id"]))[-1]
    assert name == "error" and "diverged" in data["message"]
    status, listed = call(port, "GET", "/api/models")
    assert body["id"] not in [m["id"] for m in listed]


COMBINATIONS = [
    (optimizer, loss, output)
    for optimizer in sorted(OPTIMIZERS)
    for loss, output in sorted(LOSSES)
]


@pytest.mark.parametrize(("optimizer", "loss", "output"), COMBINATIONS)
def test_every_optimizer_and_cost_trains_from_the_page(port, mnist, optimizer, loss, output):
    """Every optimiser with every cost and output the registries pair, one short epoch
    each (a small network, the largest batch) through the page's path: a real worker
    process, its per-epoch weights, then a listed model.  SGD and momentum once ended
    every run in "zip() argument 2 is longer than argument 1"."""
    activations = sorted(ACTIVATIONS)  # each activation gets its turn without a 36-run product
    activation = activations[COMBINATIONS.index((optimizer, loss, output)) % len(activations)]
    settings = {
        "optimizer": optimizer, "loss": loss, "output": output, "activation": activation,
        "epochs": 1, "sizes": [784, 8, 10], "batch_size": 1024, "augment": 0, "lr": 0.05,
    }  # fmt: skip
    status, body = call(port, "POST", "/api/train", settings)
    assert status == 202
    seen = list(events(port, body["id"]))
    assert [name for name, _ in seen] == ["epoch", "done"], seen[-1]
    done = seen[-1][1]
    assert done["model"] == body["id"] and done["epochs"] == 1
    status, listed = call(port, "GET", "/api/models")
    mine = next(m for m in listed if m["id"] == body["id"])
    assert (mine["output"], mine["activation"], mine["sizes"]) == (output, activation, [784, 8, 10])
    status, answer = call(
        port, "POST", "/api/predict", {"pixels": pixels_of(mnist, 0), "model": body["id"]}
    )
    assert status == 200 and len(answer["probabilities"]) == 10


def test_the_folder_is_read_at_the_next_start(port, trained, folder):
    # a browser that trained nothing: the models oldest to newest, none its own first
    status, before = call(port, "GET", "/api/models", browser="reader")
    process, other, _ = start_server(trained[1], "--models", folder)
    try:
        status, after = call(other, "GET", "/api/models")
    finally:
        stop(process)
    assert [m["id"] for m in after] == [m["id"] for m in before]
    assert len(after) >= 2


def test_serve_refuses_a_models_folder_it_cannot_use(trained, tmp_path):
    _, path = trained
    result = cli("serve", path, "--port", "0", "--models", tmp_path / "missing")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"digitnet serve: error: --models {tmp_path / 'missing'}: no such folder (create it first)"
    ]
    (tmp_path / "file").write_text("x")
    result = cli("serve", path, "--port", "0", "--models", tmp_path / "file")
    assert result.returncode == 2 and "not a folder" in result.stderr


def children(pid: int) -> set[int]:
    """The processes ``pid`` has started (Linux's /proc)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


#: A run within the work budget whose tenth of an epoch took about 11 s here (1,375
#: batches of 7-8 ms): where a stop once waited for the end of that tenth.
LONG_PIECES = {"sizes": [784, 256, 256, 10], "batch_size": 4, "epochs": 1, "augment": 0}


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def training_worker(process, port) -> int:
    """Start a LONG_PIECES run on the server and return its worker's pid once the
    worker has loaded the digits and trains (2 CPU seconds in)."""
    status, body = call(port, "POST", "/api/train", LONG_PIECES)
    assert status == 202, body
    while not children(process.pid):
        time.sleep(0.05)
    (worker,) = children(process.pid)
    while cpu_seconds(worker) < 2:
        time.sleep(0.05)
    return worker


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_a_server_stopped_mid_training_leaves_no_worker(trained):
    """SIGTERM while a run trains and a client follows its events: the server ends
    within its SHUTDOWN_TIMEOUT (it once took 10.3 s: the drain waited for the event
    stream, then the worker got 5 s more), and so does the worker."""
    process, port, _ = start_server(trained[1])
    try:
        worker = training_worker(process, port)
        stream = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        stream.request("GET", "/api/train/trained-1/events")
        assert stream.getresponse().status == 200
        started = time.monotonic()
        process.terminate()
        process.communicate(timeout=30)
        took = time.monotonic() - started
        stream.close()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM  # as for any SIGTERM
    assert took < SHUTDOWN_TIMEOUT, took
    assert gone(worker)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_a_killed_server_leaves_no_worker(trained):
    """SIGKILL of the server mid-run: its worker ends at once (PR_SET_PDEATHSIG); it
    once trained on for 21-34 s, until the end of a tenth of an epoch."""
    process, port, _ = start_server(trained[1])
    try:
        worker = training_worker(process, port)
        process.kill()
        process.communicate(timeout=30)
        for _ in range(100):  # the kernel's signal, then init reaps it: a moment
            if gone(worker):
                break
            time.sleep(0.01)
        assert gone(worker)
    finally:
        if process.poll() is None:
            process.kill()


def niceness(pid: int) -> int:
    """The Unix nice value of process ``pid`` (Linux's /proc)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[16])


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_a_run_trains_below_the_servers_priority_from_its_start(trained):
    """The worker is low priority from the moment it exists, not only once it has
    imported and read the digits (seconds of CPU that used to compete with the
    answers of a class drawing at each run's start)."""
    process, port, _ = start_server(trained[1])
    try:
        status, body = call(port, "POST", "/api/train", LONG_PIECES)
        assert status == 202, body
        while not children(process.pid):
            time.sleep(0.001)
        (worker,) = children(process.pid)
        first = niceness(worker)
        assert cpu_seconds(worker) < 1  # still starting
        assert first == min(19, niceness(process.pid) + NICENESS)
    finally:
        stop(process)
