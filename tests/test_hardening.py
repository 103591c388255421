"""A server many people share, tried as a hostile user would: requests from other
sites, bad numbers and shapes, clients that write before they read, HTTP framing,
event streams that would fill the connection table, explorer work that would hold
the server, and caches that would grow for ever."""

import http.client
import json
import socket
import time

import pytest

from conftest import start_server, stop
from digitnet.server.middleware import MAX_NESTING, STREAMS_PER_CLIENT, nesting


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
    status, _, body = request(server, "POST", "/api/train", b'{"epochs": 100}', **JSON)
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
        status, _, body = request(server, "DELETE", f"/api/train/{run}")
        assert status in (200, 202), body
    finally:
        for s in streams:
            s.close()
