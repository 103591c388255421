"""A server many people share, tried as a hostile user would: requests from other
sites, bad numbers and shapes, clients that write before they read, HTTP framing,
event streams that would fill the connection table, explorer work that would hold
the server, and caches that would grow for ever."""

import gc
import http.client
import json
import os
import shutil
import signal
import socket
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import start_server, stop
from digitnet.files.modelfile import Model, save
from digitnet.inspect import learning
from digitnet.learn.network import Network
from digitnet.server import SHUTDOWN_TIMEOUT, create_app
from digitnet.server.middleware import MAX_NESTING, STREAMS_PER_CLIENT, nesting
from digitnet.server.state import Atlases
from digitnet.server.work import PER_CLIENT


@pytest.fixture(scope="module")
def server(trained):
    process, port, _ = start_server(trained[1])
    yield port
    stop(process)


def request(port: int, method: str, path: str, body: bytes | None = None, **headers):
    """One request on its own connection: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def raw(port: int, data: bytes, guard: float = 30) -> bytes:
    """Send ``data``, then read until the server closes (or ``guard`` s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=guard) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


PIXELS = json.dumps({"pixels": [0.5] * 784}).encode()
JSON = {"Content-Type": "application/json"}


# -- same origin ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "http://evil.example", "Content-Type": "application/json"},
        {"Origin": "null", "Content-Type": "application/json"},
        {"Origin": "http://localhost:1", "Content-Type": "application/json"},
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
    ],
)
def test_a_write_from_another_site_is_refused(server, headers):
    for method, path in (("POST", "/api/train"), ("POST", "/api/predict")):
        status, _, body = request(server, method, path, b'{"epochs": 1}', **headers)
        assert status == 403, body
        assert "another site" in json.loads(body)["error"]
    status, _, body = request(server, "DELETE", "/api/train/trained-1", **headers)
    assert status == 403


def test_a_body_not_declared_json_is_refused(server):
    plain = {"Content-Type": "text/plain"}
    status, _, body = request(server, "POST", "/api/predict", PIXELS, **plain)
    assert status == 415 and "application/json" in json.loads(body)["error"]
    status, _, body = request(server, "POST", "/api/predict", PIXELS)  # no type at all
    assert status == 415


def test_the_page_the_widget_and_curl_still_write(server):
    own = f"http://127.0.0.1:{server}"
    for headers in (
        {"Origin": own, "Sec-Fetch-Site": "same-origin", **JSON},  # the page, the widget
        JSON,  # curl, the CLI: no Origin
        {"Origin": f"http://localhost:{server}", "Host": f"localhost:{server}", **JSON},
    ):
        status, _, body = request(server, "POST", "/api/predict", PIXELS, **headers)
        assert status == 200, body
    status, _, _ = request(server, "GET", "/api/sample", Origin="http://evil.example")
    assert status == 200  # reads are not writes


# -- bad numbers and shapes -------------------------------------------------------------


@pytest.mark.parametrize("field", ["lr", "weight_decay"])
def test_a_number_of_401_digits_is_a_422_naming_it(server, field):
    body = b'{"%s": 1%s}' % (field.encode(), b"0" * 400)
    status, _, text = request(server, "POST", "/api/train", body, **JSON)
    assert status == 422, text
    answer = json.loads(text)
    assert answer["field"] == field and len(answer["error"]) < 200


@pytest.mark.parametrize("path", ["/api/predict", "/api/train", "/api/nudge"])
def test_deep_nesting_is_refused_before_parsing(server, path):
    body = b"[" * 100_000 + b"]" * 100_000
    status, _, text = request(server, "POST", path, body, **JSON)
    assert status == 400 and "nested 100,000 deep" in json.loads(text)["error"]


def test_nesting_is_counted_outside_strings():
    assert nesting(b'{"a": [[1, 2]], "b": "[[[[[[[[\\"]]]"}') == 3
    assert nesting(b"[" * (MAX_NESTING + 1)) == MAX_NESTING + 1
    assert nesting(b'"no brackets"') == 0


def test_a_huge_unknown_model_id_is_not_echoed_whole(server):
    body = json.dumps({"pixels": [0.5] * 784, "model": "m" * 1_500_000}).encode()
    status, _, text = request(server, "POST", "/api/predict", body, **JSON)
    assert status in (413, 422) and len(text) < 1000
    status, _, text = request(server, "GET", "/api/model?model=" + "m" * 50_000)
    assert status == 404 and len(text) < 1000


def test_bad_numbers_are_echoed_as_a_short_prefix(server):
    big = "1" + "0" * 400
    status, _, text = request(server, "GET", f"/api/neuron?layer=1&index={big}")
    message = json.loads(text)["error"]
    assert status == 422 and message.startswith("index must be") and len(message) < 150
    body = json.dumps({"sizes": [10**400], "seed": 0}).encode()
    status, _, text = request(server, "POST", "/api/minibatch", body, **JSON)
    message = json.loads(text)["error"]
    assert status == 422 and "each batch size" in message and message.endswith("…")


# -- lingering close --------------------------------------------------------------------


def test_a_client_that_writes_10_mb_before_reading_reads_the_413(server):
    head = (
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n"
    )
    body = b"0" * (10 * 1024 * 1024)
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", server), timeout=30) as s:
            s.sendall(head % len(body) + body)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
        assert b"byte limit" in answer


# -- HTTP details -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/sample", "/api/model", "/api/train", "/api/models",
                                  "/static/app.js", "/"])  # fmt: skip
def test_head_answers_as_get_without_a_body(server, path):
    status, headers, body = request(server, "HEAD", path)
    got, get_headers, get_body = request(server, "GET", path)
    assert status == got == 200 and body == b""
    assert headers["content-type"] == get_headers["content-type"]
    if path != "/api/sample":  # a random digit: its length varies
        assert int(headers["content-length"]) == len(get_body)


def test_options_on_a_static_file_says_what_is_allowed(server):
    status, headers, _ = request(server, "OPTIONS", "/static/app.js")
    assert status == 405 and headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "length", [b" 5", b"5, 5", b"+5", b"5\r\nContent-Length: 5", b"0x5", b"5 5"]
)
def test_content_length_is_read_strictly(server, length):
    answer = raw(
        server,
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + length + b"\r\n\r\n[1,2]",
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_transfer_encoding_and_content_length_together_are_refused_and_closed(server):
    start = time.monotonic()
    answer = raw(
        server,
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1,2]\r\n0\r\n\r\n"
        b"GET /api/sample HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400") and b"Transfer-Encoding" in answer
    assert answer.count(b"HTTP/1.1") == 1  # closed: the request after it is not answered
    assert time.monotonic() - start < 20  # closed by the server, not by the guard


# -- event streams ----------------------------------------------------------------------


def test_event_streams_never_lock_out_requests_or_the_stop(server):
    me = {"Cookie": "digitnet_client=streams-and-stop"}  # the run's owner may stop it
    status, _, body = request(server, "POST", "/api/train", b'{"epochs": 100}', **JSON, **me)
    assert status == 202, body
    run = json.loads(body)["id"]
    streams, refused = [], 0
    try:
        for _ in range(STREAMS_PER_CLIENT + 20):
            s = socket.create_connection(("127.0.0.1", server), timeout=30)
            s.sendall(b"GET /api/train/%s/events HTTP/1.1\r\nHost: ::1\r\n\r\n" % run.encode())
            streams.append(s)
        for s in streams:
            first = s.recv(200)
            refused += first.startswith(b"HTTP/1.1 429")
        assert refused == 20
        status, _, _ = request(server, "POST", "/api/predict", PIXELS, **JSON)
        assert status == 200
        status, _, body = request(server, "DELETE", f"/api/train/{run}", **me)
        assert status in (200, 202), body
    finally:
        for s in streams:
            s.close()


# -- explorer work: bounded, fair, cancelled ---------------------------------------------


def explorer_request(port: int, path: str, cookie: str = "") -> socket.socket:
    """A GET sent and not yet read: the socket, for the caller to read or drop."""
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    extra = f"Cookie: digitnet_client={cookie}\r\n" if cookie else ""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
    return s


def answered(s: socket.socket) -> bool:
    """Whether the server has written anything on ``s`` yet (without waiting)."""
    s.setblocking(False)
    try:
        return bool(s.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        s.setblocking(True)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory, trained):
    """A 784-128-128-10 network (its first neuron table: about 3.4e10 multiply-adds,
    seconds of work) served, with the shared small model beside it as "small"."""
    folder = tmp_path_factory.mktemp("models")
    net = Network((784, 128, 128, 10), rng=np.random.default_rng(1))
    save(folder / "big.safetensors", net, {})
    shutil.copy(trained[1], folder / "small.safetensors")
    return folder


@pytest.fixture(scope="module")
def explorer(slow_model):
    process, port, _ = start_server(slow_model / "big.safetensors", "--models", slow_model)
    yield process, port
    stop(process)


BIG = "/api/neuron?layer=1&index={}"
SMALL = "/api/neuron?layer=1&index=0&model=small"


def test_cold_work_is_bounded_per_client_and_never_delays_a_cached_answer(explorer):
    process, port = explorer
    status, _, _ = request(port, "GET", SMALL)  # made once: from now on it is cached
    assert status == 200
    cold = [explorer_request(port, BIG.format(i), cookie=f"c{i % 2}") for i in range(6)]
    try:
        time.sleep(0.5)  # the six are read and started (they take seconds more)
        status, _, body = request(port, "GET", BIG.format(9), Cookie="digitnet_client=c0")
        assert status == 429 and f"at most {PER_CLIENT}" in json.loads(body)["error"]
        for cookie in ("c0", "c2"):  # a cached answer, for c0 too: served at once
            status, _, _ = request(port, "GET", SMALL, Cookie=f"digitnet_client={cookie}")
            assert status == 200
        assert not all(answered(s) for s in cold), "the cold work ended before the cached answer"
    finally:
        for s in cold:
            s.close()


def test_work_whose_client_left_stops(explorer):
    process, port = explorer
    s = explorer_request(port, "/api/neuron?layer=2&index=3&model=big")  # its own atlas
    time.sleep(1.0)
    working = cpu_seconds(process.pid)
    time.sleep(2.0)
    working = cpu_seconds(process.pid) - working  # CPU over 2 s while it computes
    s.close()  # the client leaves
    time.sleep(1.0)  # the work sees it at its next checkpoint
    idle = cpu_seconds(process.pid)
    time.sleep(2.0)
    idle = cpu_seconds(process.pid) - idle
    print(f"\nCPU over 2 s: {working:.2f} s while computing, {idle:.2f} s after the client left")
    assert idle < working / 3


def test_a_network_too_big_to_explore_is_refused_before_work(mnist):
    app = create_app(
        Model(Network((784, 256, 256, 256, 256, 10), rng=np.random.default_rng(0))),
        samples=(mnist.test_images, mnist.test_labels),
    )
    with TestClient(app) as client:
        start = time.monotonic()
        response = client.get("/api/neuron", params={"layer": 1, "index": 0})
        assert response.status_code == 422, response.text
        assert "multiply-adds" in response.json()["error"]
        assert time.monotonic() - start < 5  # refused, not computed (that takes minutes)


def test_exploring_every_epoch_of_a_run_keeps_memory_level(mnist):
    """One run's networks, one per epoch, each explored as it is made (as the page
    does while a run trains): the atlases of networks let go are let go too."""
    images, labels = mnist.test_images[:500], mnist.test_labels[:500]
    net = Network((784, 64, 10), rng=np.random.default_rng(0))
    app = create_app(Model(net), samples=(images, labels))
    state = app.state.server
    rss, kept = [], []
    with TestClient(app) as client:
        for _ in range(40):
            net = net.copy()
            net.params[...] += 0.01  # the next epoch's weights: a new network
            state.models.put("trained-1", Model(net, {}), listed=False)
            query = {"layer": 1, "index": 0, "model": "trained-1"}
            response = client.get("/api/neuron", params=query)
            assert response.status_code == 200
            gc.collect()
            kept.append((len(state.atlas), state.atlas.nbytes))
            rss.append(resident())
    print(f"\natlases kept {kept[-1][0]} ({kept[-1][1] / 2**20:.2f} MiB); RSS after 10 epochs "
          f"{rss[9] / 2**20:.0f} MiB, after 40 {rss[-1] / 2**20:.0f} MiB")  # fmt: skip
    assert all(n <= 2 for n, _ in kept)  # the served model's and the newest epoch's at most
    assert max(b for _, b in kept) <= 2 * kept[0][1] + 1
    assert rss[-1] - rss[9] < 30 * 2**20


def test_a_models_answer_is_encoded_once_and_let_go_with_it(mnist):
    samples = (mnist.test_images[:10], mnist.test_labels[:10])
    app = create_app(Model(Network((784, 16, 10))), samples=samples)
    state = app.state.server
    with TestClient(app) as client:
        state.models.put("other", Model(Network((784, 32, 10)), {}))
        first = client.get("/api/model", params={"model": "other"})
        assert first.status_code == 200 and first.json()["sizes"] == [784, 32, 10]
        assert client.get("/api/model", params={"model": "other"}).content == first.content
        assert client.get("/api/model").json()["sizes"] == [784, 16, 10]
        assert len(state.model_answers) == 2
        state.models.drop("other")
        gc.collect()
        assert len(state.model_answers) == 1


def test_the_learning_cache_is_bounded_by_bytes_and_let_go_with_its_networks(mnist):
    cache = learning.Cache(mnist.train_images[:100], mnist.train_labels[:100], max_bytes=250_000)
    nets = [Network((784, 32, 10), rng=np.random.default_rng(i)) for i in range(4)]
    for net in nets:  # the full gradient: 25,450 float64 parameters, 204 KB each
        cache.full(net, "cross-entropy")
    assert cache.nbytes <= 250_000  # only the newest fits
    assert cache.full(nets[-1], "cross-entropy") is cache.full(nets[-1], "cross-entropy")
    del nets[-1], net
    gc.collect()
    assert cache.nbytes == 0


def test_atlases_are_bounded_by_bytes(mnist):
    atlases = Atlases(mnist.test_images[:200], mnist.test_labels[:200], max_bytes=300_000)
    nets = [Network((784, 32, 10), rng=np.random.default_rng(i)) for i in range(6)]
    for net in nets:
        atlases(net).wants(1)  # 32 x 784 float32: 100 KB each
    newest = atlases(nets[-1])  # each use trims to the bound
    assert len(atlases) == 2 and atlases.nbytes <= 300_000
    assert atlases(nets[-1]) is newest  # the newest is kept


def resident() -> int:
    """This process's resident memory, in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_sigterm_during_cold_explorer_work_stops_in_time_without_traceback(slow_model):
    process, port, _ = start_server(slow_model / "big.safetensors", "--models", slow_model)
    s = explorer_request(port, "/api/neuron?layer=1&index=7")
    try:
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        start = time.monotonic()
        _, err = process.communicate(timeout=SHUTDOWN_TIMEOUT + 30)
        took = time.monotonic() - start
        print(f"\nSIGTERM during a first neuron table: stopped in {took:.1f} s")
        assert process.returncode == 128 + signal.SIGTERM
        assert "Traceback" not in err, err
        assert took < SHUTDOWN_TIMEOUT + 20  # the table alone takes longer on a busy machine
    finally:
        s.close()
        if process.poll() is None:
            process.kill()
            process.communicate()
