"""A class on one laptop (``digitnet serve --class``, for real): the addresses students
can type and a QR code that decodes to the first, the machine's own names accepted
as Host, each browser's runs its own (a cookie), a queue instead of a refusal, the
teacher's key, switch and clear, and the work budget refused before any work."""

import http.client
import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import start_server, stop
from digitnet.files.modelfile import load
from digitnet.server import create_app
from digitnet.server.budget import WORK_BUDGET, estimate_seconds
from digitnet.server.classroom import class_hosts, class_urls, lan_addresses, qr_svg, qr_text
from digitnet.server.jobs import train_config

zxingcpp = pytest.importorskip("zxingcpp")

#: The terminal's half blocks: (top module light, bottom module light).
HALVES = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}


def decode_terminal(text: str) -> str:
    """The text of a QR code drawn by ``qr_text``: half blocks back to modules (light
    drawn), then read by ZXing."""
    rows = [line for line in text.splitlines() if line]
    light = np.array([[HALVES[c][half] for c in row] for row in rows for half in (0, 1)])
    picture = (255 * light).astype(np.uint8).repeat(6, 0).repeat(6, 1)
    found = zxingcpp.read_barcodes(picture)
    return found[0].text if found else ""


def test_the_terminal_qr_code_decodes_to_the_address():
    url = "http://192.168.1.5:8000/"
    assert decode_terminal(qr_text(url)) == url
    assert decode_terminal(qr_text("http://10.0.0.23:8131/")) == "http://10.0.0.23:8131/"
    svg = qr_svg(url, "QR code")
    assert svg.startswith("<svg") and "<title>QR code</title>" in svg


def test_addresses_are_ones_others_can_type():
    addresses = lan_addresses()
    assert all(not a.startswith(("127.", "0.", "169.254.")) for a in addresses)
    urls = class_urls(8000, ["192.168.1.5"])
    assert urls[0] == "http://192.168.1.5:8000/" and all("0.0.0.0" not in u for u in urls)
    hosts = class_hosts(["192.168.1.5"])
    assert {"192.168.1.5", "localhost", "127.0.0.1"} <= hosts and "0.0.0.0" not in hosts


def test_every_address_is_said_as_one_others_can_type(trained):
    """``serve --host 0.0.0.0`` once printed "serving at http://0.0.0.0:8131/"."""
    process, port, line = start_server(trained[1], "--host", "0.0.0.0")
    try:
        status, info = Browser(port).call("GET", "/api/class")
    finally:
        stop(process)
    url = re.search(r"http://(\S+):(\d+)/", line)
    assert url[1] not in ("0.0.0.0", "[::]") and int(url[2]) == port
    assert status == 200 and info["network"] and not info["class"]  # no teacher here
    assert info["addresses"][0] == url[0]


def test_the_budget_refuses_hours_and_takes_the_default():
    """The issue's run (4 hidden layers of 256, batch 1, 100 epochs: 6.6 hours at the
    measured 230 batches a second) is over the budget; the page's default is not."""
    huge = train_config({"sizes": [784, 256, 256, 256, 256, 10], "batch_size": 1, "epochs": 100})
    assert estimate_seconds(huge) > 6 * 3600
    assert estimate_seconds(train_config({})) < WORK_BUDGET / 2


class Browser:
    """One browser: its own cookie jar (the client id), against one server."""

    def __init__(self, port: int, host: str | None = None) -> None:
        self.port, self.host, self.cookie = port, host, None

    def call(self, method, url, body=None, headers=()):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = dict(headers)
        if body is not None:
            sent["content-type"] = "application/json"
        if self.cookie:
            sent["cookie"] = self.cookie
        if self.host:
            sent["host"] = self.host
        connection.request(method, url, None if body is None else json.dumps(body), sent)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        cookie = response.getheader("set-cookie")
        if cookie:
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            self.cookie = cookie.split(";")[0]
        text = data.decode()
        return response.status, json.loads(text) if text.startswith(("{", "[")) else text


@pytest.fixture(scope="module")
def room(trained):
    process, port, line = start_server(trained[1], "--class")
    lines = [line]
    while "Teacher" not in lines[-1]:
        lines.append(process.stdout.readline())
    yield process, port, "".join(lines)
    stop(process)


def test_serve_class_prints_addresses_a_qr_code_and_the_teacher_link(room):
    _, port, printed = room
    first = re.search(r"http://(\S+):(\d+)/", printed)
    assert first and first[1] != "0.0.0.0" and int(first[2]) == port
    qr = "\n".join(line for line in printed.splitlines() if set(line) <= set(HALVES) and line)
    assert decode_terminal(qr) == first[0]
    key = re.search(r"/teacher\?key=(\S+)", printed)[1]
    status, info = Browser(port).call("GET", "/api/class")
    assert status == 200 and info["class"] and info["network"]
    assert info["addresses"][0] == first[0]
    # the machine's own address and name are answered; another name is not
    for name in (first[1], "localhost"):
        assert Browser(port, host=f"{name}:{port}").call("GET", "/api/class")[0] == 200
    assert Browser(port, host="evil.example").call("GET", "/api/class")[0] == 421
    assert Browser(port).call("GET", f"/teacher?key={key}")[0] == 200
    status, body = Browser(port).call("GET", "/teacher?key=wrong")
    assert status == 403 and "teacher key" in body["error"]
    # a link followed from another site comes without the Strict cookie: the browser's
    # own is not replaced
    linked = Browser(port)
    assert linked.call("GET", "/api/class", headers={"sec-fetch-site": "cross-site"})[0] == 200
    assert linked.cookie is None


def test_runs_queue_belong_to_their_browser_and_the_teacher_rules(room):
    _, port, printed = room
    key = re.search(r"/teacher\?key=(\S+)", printed)[1]
    ada, bob, teacher = Browser(port), Browser(port), {"x-teacher-key": key}
    long_run = {"epochs": 100, "sizes": [784, 10], "batch_size": 1024, "name": "Ada's"}
    status, first = ada.call("POST", "/api/train", long_run)
    assert status == 202 and first["position"] == 0 and first["name"] == "Ada's"
    status, again = ada.call("POST", "/api/train", {"epochs": 1})
    assert status == 429 and first["id"] in again["error"]  # one run a browser
    status, second = bob.call("POST", "/api/train", {"epochs": 1, "sizes": [784, 10]})
    assert status == 202 and second["position"] == 1 and second["id"] != first["id"]
    status, options = bob.call("GET", "/api/train")
    assert [(r["id"], r["position"], r["mine"]) for r in options["queue"]] == [
        (first["id"], 0, False), (second["id"], 1, True)
    ]  # fmt: skip
    status, refused = bob.call("DELETE", f"/api/train/{first['id']}")
    assert status == 403 and "another browser" in refused["error"]
    status, huge = bob.call("POST", "/api/train", {"sizes": [784, 256, 256, 256, 256, 10],
                                                   "batch_size": 1, "epochs": 100})  # fmt: skip
    assert status == 413 and "budget" in huge["error"]
    # the teacher switches training off: new runs are refused, the waiting one leaves
    status, _ = ada.call("POST", "/api/teacher/training", {"key": "wrong", "enabled": False})
    assert status == 403
    status, switched = ada.call("POST", "/api/teacher/training", {"key": key, "enabled": False})
    assert status == 200 and switched == {"enabled": False}
    status, off = Browser(port).call("POST", "/api/train", {"epochs": 1})
    assert status == 403 and "switched off" in off["error"]
    status, view = ada.call("GET", f"/api/teacher?key={key}")
    assert [r["id"] for r in view["queue"]] == [first["id"]] and not view["enabled"]
    status, stopped = ada.call("DELETE", f"/api/train/{first['id']}", headers=teacher)
    assert status == 202
    ada.call("POST", "/api/teacher/training", {"key": key, "enabled": True})
    status, options = ada.call("GET", "/api/train")
    assert options["enabled"]


def test_no_run_holds_the_queue_past_the_budget(trained, mnist):
    """A run still training when its budget runs out is stopped: the second of two
    queued 100-epoch runs, given half a second once its turn comes, ends long before
    its 100 epochs, stopped by the budget."""
    app = create_app(load(trained[1]), samples=(mnist.test_images[:50], mnist.test_labels[:50]))
    ada, bob = ({"cookie": f"digitnet_client={c * 16}"} for c in "ab")
    trainer = app.state.server.trainer
    with TestClient(app) as client:
        first = client.post("/api/train", json={"epochs": 100}, headers=ada).json()
        second = client.post("/api/train", json={"epochs": 100}, headers=bob).json()
        assert (first["position"], second["position"]) == (0, 1)
        trainer.budget = 0.5  # the next run to start may hold the queue half a second
        assert client.delete(f"/api/train/{first['id']}", headers=ada).status_code == 202
        with client.stream("GET", f"/api/train/{second['id']}/events") as events:
            text = "".join(events.iter_text())
    name, data = re.findall(r"event: (\w+)\ndata: (.*)\n", text)[-1]
    ended = json.loads(data)
    assert trainer.find(second["id"]).stopped_by == "budget"
    if name == "done":
        assert ended["stopped_by"] == "budget" and ended["epochs"] < 100
    else:  # stopped before its first epoch ended
        assert name == "error" and "work budget of 0.5 s" in ended["message"]
