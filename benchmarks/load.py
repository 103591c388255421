"""Load test of /api/predict: the real server in its own process, driven from this one
over loopback.  Bounded: a fixed number of requests per concurrency level.

    python benchmarks/load.py [--model model.safetensors] [--requests 2000]
                              [--concurrency 1,4,16] [--out benchmarks/results/load.md]

Reports throughput, p50/p99 latency and errors for canvas pictures (the page's path)
and for raw pixels, at each concurrency level.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

from digitnet.files.data import load_split


def start_server(model: Path) -> tuple[subprocess.Popen, str, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "digitnet", "serve", str(model), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = process.stdout.readline()
    match = re.search(r"http://(127\.0\.0\.1):(\d+)/", line)
    if not match:
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, match.group(1), int(match.group(2))


def bodies(n: int) -> dict[str, list[bytes]]:
    images, _ = load_split(None, "test")
    canvas, pixels = [], []
    for digit in images[:n]:
        picture = Image.fromarray(255 - digit.reshape(28, 28)).resize((280, 280))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        canvas.append(json.dumps({"image": url}).encode())
        pixels.append(json.dumps({"pixels": (digit / 255).round(4).tolist()}).encode())
    return {"canvas PNG 280x280": canvas, "784 pixels": pixels}


def connect(host: str, port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with Nagle's algorithm off, as browsers have it."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def drive(host: str, port: int, payloads: list[bytes], total: int, workers: int) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        connection = connect(host, port)
        mine = []
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = payloads[i % len(payloads)]
            start = time.perf_counter()
            try:
                connection.request(
                    "POST", "/api/predict", body=body, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = connect(host, port)
            mine.append(time.perf_counter() - start)
            if not ok:
                with lock:
                    errors[0] += 1
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "requests": total,
        "concurrency": workers,
        "throughput": total / wall,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "errors": errors[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: train a quick one)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "model.safetensors"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "digitnet",
                    "train",
                    "--epochs",
                    "2",
                    "--quiet",
                    "--out",
                    str(model),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        process, host, port = start_server(model)
        try:
            rows = []
            for kind, payloads in bodies(200).items():
                drive(host, port, payloads, 50, 2)  # warm up
                for workers in levels:
                    result = drive(host, port, payloads, args.requests, workers)
                    rows.append({"body": kind, **result})
                    print(
                        f"{kind:20s} c={workers:<3d} {result['throughput']:8.0f} req/s  "
                        f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  "
                        f"errors {result['errors']}",
                        flush=True,
                    )
        finally:
            process.terminate()
            process.communicate(timeout=10)
    table = [
        f"`/api/predict` on loopback, {platform.machine()} with {os.cpu_count()} cores, "
        f"{date.today().isoformat()}; server and client are separate processes.",
        "",
        "| body | concurrency | requests | throughput (req/s) | p50 (ms) | p99 (ms) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        table.append(
            f"| {r['body']} | {r['concurrency']} | {r['requests']} | "
            f"{r['throughput']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} |"
        )
    return publish("\n".join(table) + "\n", args.out, rows)


def publish(text: str, out: Path | None, rows: list[dict]) -> int:
    """Print ``text`` and write it to ``out`` (if given); the exit code: 1 if any
    row of the run had errors."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    print(text)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
