"""digitnet tried from outside, as hostile and unlucky users would: the real server
under idle sockets, slow bodies, large pictures, foreign Host headers and SIGTERM;
the real command line with special files, FIFOs, read-only and full folders, its
own inputs as outputs, signals at awkward moments and sizes no machine holds.

Everything runs for real: processes, sockets on 127.0.0.1, files, FIFOs, a tmpfs in a
private mount namespace where the system allows one.  Timeouts below are guards
against a hang, never measurements.  The numbers the README's "Bad input" section
quotes come from these tests (run with ``-s`` to see them).
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import cli, special_files, start_server, stop
from digitnet.files.modelfile import Model, load, save
from digitnet.learn.network import Network
from digitnet.limits import available_memory, training_bytes
from digitnet.server import (
    MAX_CONNECTIONS,
    PICTURE_BYTES,
    PICTURE_WORKERS,
    SHUTDOWN_TIMEOUT,
    create_app,
)

PYTHON_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def one_line(result: subprocess.CompletedProcess) -> str:
    """The command's stderr, asserted to be one line and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def proc_status(pid: int, key: str) -> int:
    """A /proc/PID/status entry in MiB (VmRSS: resident now, VmHWM: resident at peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(key)


def png_16bit_rgba(pixels: np.ndarray) -> bytes:
    """A 16-bit RGBA PNG (Pillow writes no such thing), from uint16 (H, W, 4)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w, _ = pixels.shape
    rows = pixels.astype(">u2").reshape(h, w * 4).view(np.uint8)  # (h, 8w) bytes
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], 1)  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def largest_picture(mnist) -> bytes:
    """The costliest picture the API accepts: 2000x2000 (its 4-megapixel limit),
    16-bit RGBA, a test digit drawn big in solid dark ink on white: a small file (the
    size is in the assertion) that decodes to 32 MB."""
    digit = Image.fromarray(mnist.test_images[0].reshape(28, 28)).resize((1400, 1400))
    ink = np.zeros((2000, 2000), np.float64)
    ink[300:1700, 300:1700] = np.asarray(digit) > 127
    pixels = np.empty((2000, 2000, 4), np.uint16)
    pixels[..., :3] = np.round(65535 * (1 - ink))[..., None]
    pixels[..., 3] = 65535
    png = png_16bit_rgba(pixels)
    assert len(png) < 100_000
    return png


def predict_body(png: bytes) -> bytes:
    return json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode()}).encode()


def post(port: int, body: bytes, timeout: float = 300) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/predict",
        data=body,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(port: int, path: str = "/api/sample", host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if host is not None:
        request.add_unredirected_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def read_until_closed(sock: socket.socket, guard: float) -> bytes:
    """Everything the server sends until it closes the connection (``guard``: the
    most seconds to wait, after which the test fails)."""
    sock.settimeout(guard)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (without waiting for it)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def eventually(condition, seconds: float = 30) -> bool:
    """Poll ``condition()`` until it holds (True) or ``seconds`` pass (False): for what
    the server does on its own clock, such as closing connections."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def raise_open_files(n: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip(f"this system allows {hard} open files; the test needs {n}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def json_error(response: bytes) -> tuple[int, str]:
    """(status, error text) of a raw HTTP response whose body must be JSON."""
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), response[:300]
    return int(head.split()[1]), json.loads(body)["error"]


# == the server ==========================================================================


@pytest.fixture(scope="module")
def server(trained):
    _, model = trained
    process, port, _ = start_server(model)
    yield port
    stop(process)


def test_idle_sockets_beyond_uvicorns_old_limit_lock_nobody_out(server):
    """300 silent sockets and 20 half-sent requests (uvicorn's limit of 256 would
    have turned every real request into a 503): real requests are answered."""
    idle = [socket.create_connection(("127.0.0.1", server), timeout=10) for _ in range(300)]
    for s in idle[:20]:
        s.sendall(b"GET /api/sam")
    try:
        for _ in range(20):
            status, body = get(server)
            assert status == 200 and 0 <= json.loads(body)["label"] <= 9
    finally:
        for s in idle:
            s.close()


def test_more_silent_sockets_than_it_holds_still_lock_nobody_out(server):
    """MAX_CONNECTIONS + 50 silent sockets at once: the server holds at most
    MAX_CONNECTIONS of them and still answers real requests."""
    raise_open_files(MAX_CONNECTIONS + 400)
    idle = [
        socket.create_connection(("127.0.0.1", server), timeout=10)
        for _ in range(MAX_CONNECTIONS + 50)
    ]
    try:
        for _ in range(5):
            status, _ = get(server)
            assert status == 200

        def held() -> int:
            return sum(not closed_by_server(s) for s in idle)

        assert eventually(lambda: held() <= MAX_CONNECTIONS), f"{held()} held"
        print(f"\nsilent sockets: {len(idle)} opened, {held()} held by the server")
    finally:
        for s in idle:
            s.close()


def library_server(model, app_options: str, serve_options: str):
    """The library's server (``serve(create_app(...))``) in a process of its own, with
    limits other than the command's: the process and its port."""
    script = (
        "import sys\n"
        "from digitnet.files.modelfile import load\n"
        "from digitnet.server import bind, create_app, serve\n"
        "sock = bind('127.0.0.1', 0)\n"
        "print(sock.getsockname()[1], flush=True)\n"
        f"serve(create_app(load({str(model)!r}), {app_options}), sock, {serve_options})\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return process, int(process.stdout.readline())


@pytest.fixture(scope="module")
def small_server(trained):
    """Room for 20 connections and a 60 s header timeout, to see who is dropped when
    the room is full."""
    process, port = library_server(trained[1], "", "header_timeout=60, max_connections=20")
    yield port
    stop(process)


#: The timeouts of ``quick_server``: the same code as the defaults (10 s and 20 s),
#: waited out in a fraction of the time.
QUICK_HEADER_TIMEOUT, QUICK_BODY_TIMEOUT = 1.0, 2.0


@pytest.fixture(scope="module")
def quick_server(trained):
    """Header and body timeouts of ``QUICK_HEADER_TIMEOUT`` and ``QUICK_BODY_TIMEOUT``."""
    process, port = library_server(
        trained[1], f"body_timeout={QUICK_BODY_TIMEOUT}", f"header_timeout={QUICK_HEADER_TIMEOUT}"
    )
    yield port
    stop(process)


def test_when_the_room_is_full_the_longest_idle_connection_goes(small_server):
    first = [socket.create_connection(("127.0.0.1", small_server), timeout=10) for _ in range(10)]
    status, _ = get(small_server)  # answered: the first ten were taken in before it
    assert status == 200
    later = [socket.create_connection(("127.0.0.1", small_server), timeout=10) for _ in range(15)]
    try:
        status, _ = get(small_server)  # a real request still gets in
        assert status == 200
        assert eventually(lambda: sum(closed_by_server(s) for s in first) >= 5)
        assert not any(closed_by_server(s) for s in later[-5:])
    finally:
        for s in first + later:
            s.close()


def test_silent_and_half_sent_requests_end_at_the_header_timeout(quick_server):
    start = time.monotonic()  # before the server's clock for them starts
    silent = socket.create_connection(("127.0.0.1", quick_server))
    half = socket.create_connection(("127.0.0.1", quick_server))
    half.sendall(b"GET /api/sample HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    try:
        assert read_until_closed(silent, guard=QUICK_HEADER_TIMEOUT + 30) == b""
        status, message = json_error(read_until_closed(half, guard=QUICK_HEADER_TIMEOUT + 30))
        assert time.monotonic() - start >= QUICK_HEADER_TIMEOUT  # not before
        assert status == 408
        assert message == f"no complete request headers within {QUICK_HEADER_TIMEOUT:g} s"
    finally:
        silent.close()
        half.close()


def test_a_body_that_stops_arriving_gets_408_and_is_dropped(quick_server):
    start = time.monotonic()  # before the server's clock for it starts
    slow = socket.create_connection(("127.0.0.1", quick_server))
    slow.sendall(
        b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000\r\n\r\n0123456789"
    )
    try:
        status, message = json_error(read_until_closed(slow, guard=QUICK_BODY_TIMEOUT + 30))
        assert time.monotonic() - start >= QUICK_BODY_TIMEOUT  # not before
        assert status == 408 and f"within {QUICK_BODY_TIMEOUT:g} s" in message
    finally:
        slow.close()
    status, _ = get(quick_server)
    assert status == 200


def test_sigterm_stops_the_server_while_clients_hang_on(trained):
    _, model = trained
    process, port, _ = start_server(model)
    clients = []
    try:
        for _ in range(5):
            clients.append(socket.create_connection(("127.0.0.1", port)))
        uploads = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(
                b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n0123456789"
            )
            uploads.append(s)
        # A request sent after the uploads and answered: the server's event loop read
        # what was sent before it (every socket ready in one poll is read in the same
        # turn), so each upload is a request waiting for the rest of its body.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(2):
            connection.request("GET", "/api/sample")
            answer = connection.getresponse()
            assert answer.status == 200 and answer.read()
        kept_alive = connection.sock  # kept open by the server, after two requests
        clients += [*uploads, kept_alive]
        process.send_signal(signal.SIGTERM)
        start = time.monotonic()
        _, err = process.communicate(timeout=SHUTDOWN_TIMEOUT + 30)  # guard: it stops
        print(f"\nSIGTERM with {len(clients)} clients hanging on: stopped in "
              f"{time.monotonic() - start:.1f} s")  # fmt: skip
        assert process.returncode == 128 + signal.SIGTERM
        assert "Traceback" not in err
        for s in uploads:  # told why, in JSON
            status, message = json_error(read_until_closed(s, guard=10))
            assert status == 503 and "stopping" in message
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        for s in clients:
            s.close()


@pytest.mark.parametrize(
    "host, status",
    [
        ("evil.example", 421),
        ("127.0.0.1.evil.example", 421),
        ("localhost.evil.example:8000", 421),
        ("[::2]", 421),
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("LOCALHOST", 200),
        ("[::1]:{port}", 200),
    ],
)
def test_only_loopback_names_are_served_on_loopback(server, host, status):
    """DNS rebinding: a page on evil.example that points its name at 127.0.0.1
    still sends Host: evil.example, and gets nothing."""
    code, body = get(server, host=host.format(port=server))
    assert code == status
    if status == 421:
        assert "is not served here" in json.loads(body)["error"]


def test_the_http_layers_own_errors_are_json(server):
    def raw(request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server), timeout=30) as s:
            s.sendall(request)
            return read_until_closed(s, guard=30)

    status, message = json_error(raw(b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400 and "malformed HTTP request" in message
    huge = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000
    status, message = json_error(raw(huge))  # headers over 64 KB, still unfinished
    assert status == 400 and "malformed HTTP request" in message
    head = raw(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"text/html" in head
    assert head.endswith(b"\r\n\r\n")  # headers only


def test_one_largest_picture_takes_at_most_picture_bytes(largest_picture, tmp_path):
    """Measured in a fresh process: resident memory at peak minus before."""
    path = tmp_path / "big.png"
    path.write_bytes(largest_picture)
    script = (
        "import numpy as np\n"
        "from digitnet.vision.preprocess import open_picture, to_mnist\n"
        "from digitnet.server import MAX_IMAGE_PIXELS\n"
        "def mib(key):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(key + ':'): return int(line.split()[1]) / 1024\n"
        f"data = open({str(path)!r}, 'rb').read()\n"
        "to_mnist(np.eye(8))\n"
        "before = mib('VmRSS')\n"
        "x = to_mnist(open_picture(data, max_pixels=MAX_IMAGE_PIXELS))\n"
        "print(mib('VmHWM') - before, float(x.max()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    used, brightest = map(float, result.stdout.split())
    print(f"\none 2000x2000 16-bit RGBA picture ({len(largest_picture):,} bytes): {used:.0f} MiB")
    assert brightest == 1.0  # the digit was found
    assert used * 2**20 <= PICTURE_BYTES


@pytest.mark.slow
def test_concurrent_largest_pictures_stay_within_the_pool_bound(trained, largest_picture):
    """24 clients send the costliest picture at once: all are answered, and the
    server's peak memory (VmHWM from /proc) stays within PICTURE_WORKERS pictures
    of where it was, and falls back afterwards.  (24 pictures decoded at once would
    take 24 · 142 MiB, several times the bound, as 64 would.)"""
    clients = 24
    _, model = trained
    process, port, _ = start_server(model)
    body = predict_body(largest_picture)
    try:
        status, answer = post(port, body)  # warm: every library loaded, the pool started
        assert status == 200
        before = proc_status(process.pid, "VmRSS")
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(post(port, body)))
            for _ in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        peak, after = proc_status(process.pid, "VmHWM"), proc_status(process.pid, "VmRSS")
        print(
            f"\n{clients} concurrent 2000x2000 pictures: server {before} MiB before, "
            f"{peak} MiB at peak, {after} MiB after"
        )
        assert len(results) == clients and {s for s, _ in results} == {200}
        assert all(a["digit"] == answer["digit"] for _, a in results)
        bodies = clients * 4 * len(body)  # each body as bytes, str, decoded PNG and copy
        assert (peak - before) * 2**20 <= PICTURE_WORKERS * PICTURE_BYTES + bodies + 64 * 2**20
        assert (after - before) * 2**20 < PICTURE_BYTES  # given back, not kept
    finally:
        stop(process)


def test_a_model_without_784_inputs_answers_422_for_pictures(mnist, largest_picture):
    app = create_app(
        Model(Network((100, 10), rng=np.random.default_rng(0))),
        samples=(mnist.test_images[:10], mnist.test_labels[:10]),
    )
    with TestClient(app) as client:
        picture = client.post(
            "/api/predict",
            content=predict_body(largest_picture),
            headers={"content-type": "application/json"},
        )
        pixels = client.post("/api/predict", json={"pixels": [0.0] * 784})
    for response in (picture, pixels):
        assert response.status_code == 422
        assert "takes 100 inputs" in response.json()["error"]


# == the command line: files =============================================================


@pytest.fixture
def specials(tmp_path):
    """Special files made in the test's folder: a FIFO, a socket, a folder and, where
    allowed, a copy of the /dev/null device node (never the real one)."""
    made, sock = special_files(tmp_path, ".png")
    yield made
    sock.close()


def test_special_files_are_never_replaced_and_refused_before_work(trained, specials, tmp_path):
    _, model = trained
    (tmp_path / "seven").mkdir()
    for kind, path in specials.items():
        before = os.lstat(path)
        for args in (
            ["train", "--out", path],
            ["train", "--checkpoint", path, "--out", tmp_path / "m.safetensors"],
            ["plot", "weights", model, "--out", path],
        ):
            result = cli(*args, timeout=120)
            assert result.returncode == 2 and result.stdout == "", (args, result.stdout)
            assert f"exists and is {kind}, not a regular file" in one_line(result)
        after = os.lstat(path)
        assert (after.st_mode, after.st_ino, after.st_rdev) == (
            before.st_mode,
            before.st_ino,
            before.st_rdev,
        )
    assert not (tmp_path / "m.safetensors").exists()


def test_save_input_never_overwrites_the_pictures(trained, mnist, tmp_path):
    _, model = trained
    seven = tmp_path / "seven.png"
    Image.fromarray(255 - mnist.test_images[0].reshape(28, 28)).resize((280, 280)).save(seven)
    original = seven.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "digitnet", "predict", str(model), "seven.png", "--save-input", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "is seven.png, which this command reads" in one_line(result)
    assert seven.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seven.png"]
    result = cli("predict", model, seven, "--save-input", tmp_path / "inputs", timeout=120)
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "inputs" / "seven.png") as saved:
        assert saved.size == (28, 28)
    assert seven.read_bytes() == original


def test_fifos_as_inputs_are_refused_without_waiting(trained, tmp_path, small_mnist):
    """A FIFO nobody writes to would block open() forever; every reader refuses it
    unopened and goes on with the rest (guard: 120 s per command)."""
    _, model = trained
    os.mkfifo(tmp_path / "fifo.png")
    os.mkfifo(tmp_path / "fifo.safetensors")
    good = tmp_path / "good.png"
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(good)
    data = tmp_path / "data"
    shutil.copytree(small_mnist, data)
    (data / "t10k-labels-idx1-ubyte.gz").unlink()
    os.mkfifo(data / "t10k-labels-idx1-ubyte.gz")

    result = cli("predict", model, tmp_path / "fifo.png", good, "--json", timeout=120)
    assert result.returncode == 2
    answers = json.loads(result.stdout)
    assert "is a FIFO, expected an image file" in answers[0]["error"]
    assert 0 <= answers[1]["digit"] <= 9  # the rest of the batch still answered
    fifo_model = tmp_path / "fifo.safetensors"
    for args, expected in [
        (["plot", "network", model, "--image", tmp_path / "fifo.png", "--out", tmp_path / "n.png"],
         "is a FIFO, expected an image file"),
        (["info", fifo_model], "is a FIFO, expected a .safetensors model file"),
        (["evaluate", fifo_model], "is a FIFO, expected a .safetensors model file"),
        (["serve", fifo_model, "--port", "0"], "is a FIFO"),
        (["train", "--resume", fifo_model], "is a FIFO"),
        (["evaluate", model, "--data", data], "is a FIFO, expected an IDX file"),
    ]:  # fmt: skip
        result = cli(*args, timeout=120)
        assert result.returncode == 2 and expected in one_line(result), (args, result.stderr)


def in_private_mounts(script: str, tmp_path: Path) -> dict:
    """Run a Python script as root in a mount namespace of its own (so its tmpfs
    mounts vanish with it); what it prints as JSON.  Skips where that is not allowed."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare to mount a small file system")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k none {tmp_path}"],
        capture_output=True,
    )
    if probe.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    (tmp_path / "script.py").write_text(script)
    result = subprocess.run(
        ["unshare", "-m", sys.executable, str(tmp_path / "script.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


MOUNTS = """
import json, os, subprocess, sys
root = sys.argv[0].rsplit("/", 1)[0]
def run(*args):
    r = subprocess.run([sys.executable, "-m", "digitnet", *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    return {"code": r.returncode, "out": r.stdout, "err": r.stderr}
def mount(name, size, *options):
    os.makedirs(f"{root}/{name}")
    opts = ",".join((f"size={size}",) + options)
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "none", f"{root}/{name}"], check=True)
    return f"{root}/{name}"
"""


def test_read_only_and_full_folders_are_found_before_training(trained, tmp_path):
    _, model = trained
    script = (
        MOUNTS
        + f"""
ro = mount("ro", "1m", "ro")
full = mount("full", "256k")
fd = os.open(full + "/filler", os.O_WRONLY | os.O_CREAT)
try:  # fill it, then give back a few KB
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    os.close(fd)
os.truncate(full + "/filler", os.path.getsize(full + "/filler") - 24 * 1024)
open(full + "/old.png", "wb").write(b"old picture")
results = {{
    "ro": run("train", "--out", ro + "/m.safetensors"),
    "full": run("train", "--out", full + "/m.safetensors"),
    "plot": run("plot", "weights", {str(model)!r}, "--out", full + "/old.png"),
}}
results["left"] = sorted(os.listdir(full))
results["old"] = open(full + "/old.png", "rb").read().decode()
print(json.dumps(results))
"""
    )
    results = in_private_mounts(script, tmp_path)
    for name, expected in [
        ("ro", "cannot write in .*/ro \\(Read-only file system\\)"),
        ("full", "needs about [\\d,]+ bytes but .*/full has [\\d,]+ free"),
        ("plot", "old.png: cannot write \\(No space left on device: the disk or quota is full\\)"),
    ]:
        r = results[name]
        assert r["code"] == 2 and "epoch" not in r["out"], r
        lines = r["err"].strip().splitlines()
        assert len(lines) == 1 and re.search(expected, lines[0]), r["err"]
    assert results["left"] == ["filler", "old.png"]  # no temporary file left behind
    assert results["old"] == "old picture"  # and the old file whole


def test_a_long_legal_name_is_saved_and_a_too_long_one_refused_first(tmp_path, small_mnist):
    name = "m" * 240 + ".safetensors"  # 252 bytes: its .NAME.tmp would not fit
    result = cli(
        "train", "--data", small_mnist, "--epochs", "1", "--validation", "100",
        "--kernel", "numpy", "--quiet", "--out", tmp_path / name,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / name).info["history"]["stopped"] == "completed"
    result = cli("train", "--out", tmp_path / ("m" * 250 + ".safetensors"))
    assert result.returncode == 2 and "the name is 262 bytes, more than the 255" in one_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def start(*args, cwd=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "digitnet", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=PYTHON_ENV,
        cwd=cwd,
    )


def wait_for_line(process: subprocess.Popen, prefix: str) -> list[str]:
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line starting {prefix!r}: {lines} {process.stderr.read()}")


@pytest.mark.parametrize("failure", ["folder removed", "path made a folder"])
def test_a_checkpoint_that_cannot_be_written_does_not_end_training(tmp_path, small_mnist, failure):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    out, checkpoint = tmp_path / "m.safetensors", folder / "run.ckpt"
    process = start(
        "train", "--data", small_mnist, "--validation", "100", "--kernel", "numpy",
        "--epochs", "60", "--checkpoint-every", "1", "--checkpoint", checkpoint, "--out", out,
    )  # fmt: skip
    wait_for_line(process, "epoch  1/60")
    folder.rename(tmp_path / "gone")  # in one step, whatever the run is writing
    if failure == "path made a folder":
        checkpoint.mkdir(parents=True)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "checkpoint not saved" in warnings[0], stderr
    assert "training goes on" in warnings[0] and "checkpoint(s) not saved" in warnings[1]
    assert "Traceback" not in stderr
    assert len(load(out).info["history"]["epochs"]) == 60  # the model is saved, whole


def test_sigterm_during_training_keeps_the_best_model_like_ctrl_c(tmp_path):
    out = tmp_path / "m.safetensors"
    process = start("train", "--epochs", "200", "--kernel", "numpy", "--out", out)
    wait_for_line(process, "epoch   2/200")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "kept the best model so far" in err and "Traceback" not in err
    history = load(out).info["history"]
    assert history["stopped"] == "interrupted" and 2 <= len(history["epochs"]) < 200
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


STARTUP = (
    "import sys, digitnet\n"
    "print('up', flush=True)\n"
    "from digitnet.cli import main\n"
    "raise SystemExit(main(sys.argv[1:]))\n"
)


def test_ctrl_c_while_starting_up_is_one_line(trained):
    """Ctrl-C at moments spread over the first few tenths of a second (while NumPy and
    the rest load, then while the command runs): one line, never a traceback.  (The
    first few ms after "up" are Python finding digitnet.cli, before any of its code
    runs, and the last few its own shutdown: no program handles a signal there; a
    signal in its shutdown ends the process quietly, by SIGINT.)"""
    _, model = trained
    codes = []
    for delay in (0.05, 0.08, 0.12, 0.16, 0.2, 0.25, 0.3, 0.45):
        process = subprocess.Popen(
            [sys.executable, "-c", STARTUP, "info", str(model)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline() == "up\n"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        codes.append(process.returncode)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, (delay, err)
        assert process.returncode in (0, 130, -signal.SIGINT), (delay, process.returncode, err)
        if process.returncode == 130:
            assert err.strip() == "interrupted"
        if process.returncode == -signal.SIGINT:
            assert err == ""
    assert 130 in codes  # some signal did land while it was starting


def test_serve_with_a_misspelt_model_trains_nothing(tmp_path, trained):
    result = cli("serve", tmp_path / "modle.safetensors", "--port", "0", timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert "no model at" in one_line(result) and "digitnet train --out" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_first_serve_leaves_no_half_trained_model(tmp_path, default_loop):
    """Ctrl-C after the first of 40 epochs (on ``default_loop``)."""
    process = start("serve", "--port", "0", cwd=tmp_path)
    wait_for_line(process, "epoch  1/40")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "no model saved" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # neither a model nor a temporary file


# == the command line: sizes, flags, records =============================================


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "100000000"], "--batch-size 100,000,000 is more than the 55,000"),
        (["--sizes", "784,100000000,10"], "a layer of 100,000,000 neurons: at most 1,000,000"),
        (["--sizes", "784,60000,900,10"], "make 101,109,910 weights and biases: at most 50,0"),
        (["--sizes", ",".join(["784"] + ["2"] * 100 + ["10"])], "102 layer sizes: at most 65"),
        (["--epochs", "1000000"], "argument --epochs: at most 10,000, got 1000000"),
        (["--lr", "1e39"], "expected a positive float"),
    ],
)
def test_sizes_no_machine_holds_are_refused_before_allocating(tmp_path, args, message):
    result = cli("train", *args, "--out", tmp_path / "m.safetensors")
    assert result.returncode == 2 and result.stdout == ""
    assert message in one_line(result)
    assert list(tmp_path.iterdir()) == []


def test_a_run_bigger_than_the_memory_is_refused_before_it_starts(tmp_path):
    sizes, batch = (784, 60_000, 10), 55_000
    need = training_bytes(sizes, batch, 55_000, 5_000)
    if (available_memory() or 0) > need:
        pytest.skip("this machine has room for the run")
    result = cli("train", "--sizes", "784,60000,10", "--batch-size", batch, "--out", tmp_path / "m")
    assert result.returncode == 2 and "GiB of memory but" in one_line(result)


def test_a_model_file_declaring_a_million_layers_is_a_short_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save(path, Network((784, 6, 10), rng=np.random.default_rng(0)))
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    info = json.loads(header["__metadata__"]["digitnet"])
    info["sizes"] = [784] + [6] * 1_000_000 + [10]
    header["__metadata__"]["digitnet"] = json.dumps(info)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + n :])
    for command in ("info", "evaluate", "serve"):
        result = cli(command, path, timeout=120)
        assert result.returncode == 2 and len(result.stderr) < 300
        assert "1,000,002 layer sizes: at most 65" in one_line(result)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--lr", "fast"],
        ["train", "--bogus"],
        ["plot", "nonsense", "m.safetensors", "--out", "x.png"],
        ["predict"],
        ["serve", "--port", "eighty"],
        ["info"],
    ],
)
def test_bad_flags_are_one_line_without_the_usage_block(args):
    result = cli(*args)
    assert result.returncode == 2 and "usage:" not in result.stderr
    assert "error:" in one_line(result)


def test_checkpoint_alone_checkpoints_every_epoch(tmp_path, small_mnist):
    from digitnet.files.checkpoint import load_checkpoint

    checkpoint = tmp_path / "run.ckpt"
    result = cli(
        "train", "--data", small_mnist, "--validation", "100", "--kernel", "numpy", "--epochs",
        "2", "--quiet", "--out", tmp_path / "m.safetensors", "--checkpoint", checkpoint,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    state, config = load_checkpoint(checkpoint)
    assert state.epoch == config.epochs == 2
    result = cli("train", "--checkpoint", checkpoint, "--checkpoint-every", "0")
    assert result.returncode == 2 and "would save nothing" in one_line(result)


@pytest.mark.parametrize(
    "kind, flags, flag",
    [
        ("weights", ["--index", "3"], "--index"),
        ("curves", ["--count", "5"], "--count"),
        ("confusion", ["--seed", "1"], "--seed"),
        ("noise", ["--data", "/tmp"], "--data"),
        ("mistakes", ["--image", "x.png"], "--image"),
    ],
)
def test_plot_flags_that_do_not_apply_are_errors(trained, tmp_path, kind, flags, flag):
    _, model = trained
    result = cli("plot", kind, model, *flags, "--out", tmp_path / "p.png")
    assert result.returncode == 2
    assert f"{flag} does not apply to {kind} plots" in one_line(result)
    assert not (tmp_path / "p.png").exists()


def test_a_model_with_five_outputs_is_refused_where_labels_run_to_nine(tmp_path):
    path = tmp_path / "five.safetensors"
    save(path, Network((784, 16, 5), rng=np.random.default_rng(0)))
    for args in (
        ["evaluate", path],
        ["plot", "confusion", path, "--out", tmp_path / "c.png"],
        ["plot", "mistakes", path, "--out", tmp_path / "m.png"],
    ):
        result = cli(*args)
        assert result.returncode == 2
        assert "has 5 outputs but the test labels run from 0 to 9" in one_line(result)
