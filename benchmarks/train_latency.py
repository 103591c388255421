"""/api/predict latency while the server trains a network, against the same server idle.

    python benchmarks/train_latency.py --model model.safetensors [--requests 1000]
                                       [--train '{"epochs": 40}']

Starts ``digitnet serve`` in its own process, sends ``--requests`` canvas pictures
(the page's path) one at a time with no pause, idle; then starts a training
(``POST /api/train``, the defaults unless ``--train`` says otherwise) and sends the same
requests while it runs; prints p50/p99 of both, and how long the run took from the
POST to its ``done`` event.  Bounded: a fixed number of requests each way, and it
stops the training (DELETE) if it is still running when they are sent.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from load import bodies, connect, start_server  # noqa: E402


def latencies(host: str, port: int, payloads: list[bytes], n: int, stop=None) -> np.ndarray:
    """Milliseconds of n requests sent one after another (fewer if ``stop`` is set)."""
    connection, out = connect(host, port), []
    for i in range(n):
        if stop is not None and stop.is_set():
            break
        start = time.perf_counter()
        connection.request("POST", "/api/predict", payloads[i % len(payloads)],
                           {"Content-Type": "application/json"})  # fmt: skip
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"/api/predict answered {response.status}")
        out.append(time.perf_counter() - start)
    connection.close()
    return np.array(out) * 1000


def follow(host: str, port: int, job: str, finished: threading.Event, result: dict) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=600)
    connection.request("GET", f"/api/train/{job}/events")
    response = connection.getresponse()
    epochs, name = 0, None
    for raw in response:
        line = raw.decode().strip()
        if line.startswith("event: "):
            name = line[len("event: ") :]
            epochs += name == "epoch"
        elif line.startswith("data: ") and name == "epoch" and epochs == 1:
            result["first"] = json.loads(line[len("data: ") :])["val_accuracy"]
        elif line.startswith("data: ") and name in ("done", "error"):
            result["end"], result["epochs"], result["last"] = time.perf_counter(), epochs, line
            break
    connection.close()
    finished.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--train", default="{}", help="the POST /api/train body (JSON)")
    args = parser.parse_args(argv)
    payloads = bodies(50)["canvas PNG 280x280"]
    process, host, port = start_server(args.model)
    try:
        time.sleep(1)
        latencies(host, port, payloads, 50)  # warm up
        idle = latencies(host, port, payloads, args.requests)
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.request("POST", "/api/train", args.train, {"Content-Type": "application/json"})
        start = time.perf_counter()
        started = json.loads(connection.getresponse().read())
        connection.close()
        finished, result = threading.Event(), {}
        reader = threading.Thread(target=follow, args=(host, port, started["id"], finished, result))
        reader.start()
        time.sleep(3)  # past the worker's start: measure while it trains
        busy = latencies(host, port, payloads, args.requests, stop=finished)
        if not finished.is_set():
            print("(requests done before the training; waiting for it to end)")
        reader.join(900)
        for name, ms in (("idle", idle), ("while training", busy)):
            print(f"{name:15} {len(ms):5} requests  p50 {np.percentile(ms, 50):6.1f} ms  "
                  f"p99 {np.percentile(ms, 99):6.1f} ms  max {ms.max():6.1f} ms")  # fmt: skip
        if "end" in result:
            print(f"training: {result['epochs']} epochs, POST to the last event "
                  f"{result['end'] - start:.1f} s; validation accuracy after epoch 1: "
                  f"{result.get('first')}; {result['last']}")  # fmt: skip
    finally:
        process.terminate()
        process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
