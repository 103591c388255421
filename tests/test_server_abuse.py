"""The real server under abuse, on loopback: slow and abandoned clients, paths that
try to leave the static folder, and a loud warning when not bound to loopback."""

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request

import pytest

from conftest import start_server, stop
from digitnet.files.modelfile import load


@pytest.fixture(scope="module")
def server(trained):
    _, model = trained
    process, port, _ = start_server(model)
    yield port
    stop(process)


def sample(port: int, timeout: float = 5) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sample", timeout=timeout) as r:
        return json.loads(r.read())


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_slow_and_idle_clients_do_not_block_others(server):
    idle = []
    for i in range(40):  # connections that send half a request and wait
        s = socket.create_connection(("127.0.0.1", server), timeout=5)
        s.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n"
            if i % 2
            else b"GET /api/sam"
        )
        idle.append(s)
    try:
        for _ in range(20):  # answered while 40 clients dawdle
            assert 0 <= sample(server)["label"] <= 9
    finally:
        for s in idle:
            s.close()


def test_abandoned_uploads_leave_the_server_well(server):
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server), timeout=5)
        s.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n" + b'{"pixels": [' + b"0.5, " * 1000
        )
        s.close()
    assert 0 <= sample(server)["label"] <= 9


def test_oversized_body_is_refused_before_it_is_read(server):
    response = raw(
        server,
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize(
    "path",
    [
        b"/static/../__init__.py",
        b"/static/../../../../etc/passwd",
        b"/static/%2e%2e/__init__.py",
        b"/static/..%2f..%2fpyproject.toml",
        b"/static/....//__init__.py",
        b"/../pyproject.toml",
        b"/static/\\..\\__init__.py",
        b"/static//etc/passwd",
        b"/nothing",
    ],
)
def test_no_path_leaves_the_static_folder(server, path):
    response = raw(
        server, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    status = int(response.split()[1])
    assert status in (400, 404), response[:200]
    assert b"__version__" not in response and b"root:" not in response  # digitnet/__init__.py


def test_loopback_by_default_and_a_loud_warning_otherwise(trained):
    _, model = trained
    process, port, line = start_server(model)
    try:
        assert "http://127.0.0.1:" in line
    finally:
        stop(process)
    process, port, line = start_server(model, "--host", "0.0.0.0")
    try:
        assert 0 <= sample(port)["label"] <= 9  # reached over loopback only
    finally:
        err = stop(process)
    assert "WARNING" in err and "not loopback" in err


def test_the_readme_main_job_trains_then_serves(tmp_path, default_loop):
    """`digitnet serve` with no model yet: trains the default network, then serves it
    (on the loop "auto" takes once the compiled loop is built: ``default_loop``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digitnet", "serve", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("serving "):
                break
        assert lines[0].startswith("no model at model.safetensors: training one")
        assert any(line.startswith("test accuracy") for line in lines)
        port = int(re.search(r":(\d+)/", lines[-1]).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/model", timeout=5) as r:
            model = json.loads(r.read())
        assert model["sizes"] == [784, 16, 16, 10] and model["test_accuracy"] >= 0.96
        assert load(tmp_path / "model.safetensors").info["kernel"] == default_loop
    finally:
        stop(process)
