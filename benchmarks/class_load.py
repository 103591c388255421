"""A class on one laptop: N students drawing at once against a real ``digitnet serve``.

    python benchmarks/class_load.py [--model model.safetensors] [--students 20,40,60]
                                    [--seconds 30] [--send grey,png] [--trainers 2]
                                    [--out benchmarks/results/class.md]

Each student is a thread with its own keep-alive connection that behaves like the page:
it draws a digit stroke by stroke, a point every 1/60 s (the pointer events of one
frame) at a hand's speed, and the page's own rule decides when a picture goes out
(static/app.js): one request in flight, at most one every ``THROTTLE`` s while a stroke
grows, and the finished stroke at once (after the request in flight).  What goes out is
what the page sends: the 280x280 pad as a PNG (``png``, ``pad.toDataURL``) or as its
grey bytes (``grey``, ``pad.js greyPicture``).  Between digits a student looks at the
answer for a while; one in ``EXPLORERS`` then opens a neuron or two in the explorer
(``GET /api/neuron``); ``--trainers`` more students train small networks one after the
other (``POST /api/train``, following its events to the end; 409 while another run
trains is the page's "busy", counted apart).

Per class size and sending format: answers a second, p50/p99 of ``/api/predict``,
errors, explorer latency, training runs; then the largest N with p99 under
``P99_LIMIT_MS`` and no error, and what one request costs, part by part, in process.
Bounded: ``--seconds`` of drawing per row, after a ramp of ``RAMP`` s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench import blas, machine  # noqa: E402
from load import connect, publish, start_server  # noqa: E402
from strokes import (  # noqa: E402
    BODIES,
    PENS,
    POINT_EVERY,
    Drawing,
    drawings,
    grey_body,
    png_body,
    render,
    variant,
)

#: The page's throttle (static/app.js THROTTLE_MS): at most one picture this often.
THROTTLE = 0.120
#: Pauses: between strokes, and looking at the answer between digits (s).
PEN_UP, LOOK = (0.2, 0.5), (1.0, 3.0)
#: One student in this many opens the explorer after a digit (1-3 neurons).
EXPLORERS = 5
#: Epochs of a training student's run (a small run: seconds).
TRAIN_EPOCHS = 2
#: The goal: /api/predict's p99 under this, with no error.
P99_LIMIT_MS = 100.0
#: Seconds over which the students join, so they do not start in step (at most the
#: measured time).
RAMP = 2.0

# -- the class --------------------------------------------------------------------------


@dataclass
class Tally:
    """What the students saw, shared between their threads (under ``lock``)."""

    start: float
    end: float
    predict: list[float] = field(default_factory=list)
    neuron: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    runs: list[float] = field(default_factory=list)
    busy: int = 0
    answered: int = 0  # /api/predict answers in the whole lesson, ramp included
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counts(self, at: float) -> bool:
        """Whether something that began at ``at`` falls in the measured window."""
        return self.start <= at < self.end


class Student:
    """One student's page: a connection, the throttle's clock, and what it recorded."""

    def __init__(self, host: str, port: int, tally: Tally, rng: np.random.Generator) -> None:
        self.host, self.port, self.tally, self.rng = host, port, tally, rng
        self.connection = connect(host, port)
        self.last_sent = -1.0

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        """One request on the keep-alive connection: status (0: no answer), body, seconds."""
        began = time.perf_counter()
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            status, answer = response.status, response.read()
        except (OSError, http.client.HTTPException) as e:
            self.connection.close()
            self.connection = connect(self.host, self.port)
            status, answer = 0, str(e).encode()
        return status, answer, time.perf_counter() - began

    def pause(self, low: float, high: float) -> bool:
        """Wait a while (uniform in [low, high] s), at most until the window closes;
        whether it is still open."""
        left = self.tally.end - time.perf_counter()
        time.sleep(max(0.0, min(self.rng.uniform(low, high), left)))
        return time.perf_counter() < self.tally.end

    def predict(self, body: bytes) -> None:
        began = time.perf_counter()
        self.last_sent = began
        status, answer, seconds = self.call("POST", "/api/predict", body)
        with self.tally.lock:
            self.tally.answered += 1
        if self.tally.counts(began):
            with self.tally.lock:
                self.tally.predict.append(seconds)
                if status != 200:
                    self.tally.errors.append(f"predict {status}: {answer[:120]!r}")

    def stroke(self, frames: list[bytes]) -> None:
        """Draw one stroke, a point a frame; send as the page does: when the throttle
        allows and nothing is in flight, the pad as it is then; at the end, the whole
        stroke at once."""
        began = time.perf_counter()
        drawn = len(frames) * POINT_EVERY
        while True:
            now = time.perf_counter()
            if now - began >= drawn:
                self.predict(frames[-1])
                return
            wait = self.last_sent + THROTTLE - now
            if wait > 0:
                time.sleep(min(wait, began + drawn - now))
                continue
            self.predict(frames[min(int((now - began) / POINT_EVERY), len(frames) - 1)])

    def explore(self, sizes: list[int]) -> None:
        """Open one to three neurons of the explorer, as a curious student does."""
        for _ in range(int(self.rng.integers(1, 4))):
            layer = int(self.rng.integers(1, len(sizes)))
            index = int(self.rng.integers(sizes[layer]))
            began = time.perf_counter()
            status, answer, seconds = self.call("GET", f"/api/neuron?layer={layer}&index={index}")
            if self.tally.counts(began):
                with self.tally.lock:
                    self.tally.neuron.append(seconds)
                    if status != 200:
                        self.tally.errors.append(f"neuron {status}: {answer[:120]!r}")
            if not self.pause(0.5, 1.5):
                return

    def draw(self, pictures: list[Drawing], sizes: list[int], curious: bool) -> None:
        """Digits one after another until the window closes."""
        self.pause(0, self.tally.start - time.perf_counter())
        while time.perf_counter() < self.tally.end:
            drawing = pictures[int(self.rng.integers(len(pictures)))]
            for frames in drawing.frames:
                self.stroke(frames)
                if not self.pause(*PEN_UP):
                    break
            if curious:
                self.explore(sizes)
            self.pause(*LOOK)
        self.connection.close()

    def train(self) -> None:
        """Small training runs one after another (409: another run trains; wait)."""
        self.pause(0, self.tally.start - time.perf_counter())
        body = json.dumps({"epochs": TRAIN_EPOCHS}).encode()
        while time.perf_counter() < self.tally.end:
            began = time.perf_counter()
            status, answer, _ = self.call("POST", "/api/train", body)
            if status == 409:
                with self.tally.lock:
                    self.tally.busy += 1
                self.pause(*LOOK)
                continue
            if status != 202:
                with self.tally.lock:
                    self.tally.errors.append(f"train {status}: {answer[:120]!r}")
                return
            job = json.loads(answer)["id"]
            status, answer, _ = self.call("GET", f"/api/train/{job}/events")
            if status != 200 or b"event: done" not in answer:
                with self.tally.lock:
                    self.tally.errors.append(f"train events {status}: {answer[-120:]!r}")
                return
            with self.tally.lock:
                self.tally.runs.append(time.perf_counter() - began)
            self.pause(*LOOK)
        self.connection.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process ``pid`` has used so far (Linux; else nan)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lesson(
    server: tuple[int, str, int], pictures: list[Drawing], sizes: list[int], n: int,
    trainers: int, seconds: float, seed: int = 0,
) -> dict:
    """n students drawing (one in ``EXPLORERS`` exploring) and ``trainers`` training for
    a ramp + ``seconds`` against ``server`` (pid, host, port); what /api/predict did in
    the last ``seconds``, and the server's CPU time per answer over the whole lesson."""
    pid, host, port = server
    cpu = cpu_seconds(pid)
    now, ramp = time.perf_counter(), min(RAMP, seconds)
    tally = Tally(start=now + ramp, end=now + ramp + seconds)
    rngs = np.random.default_rng(seed).spawn(n + trainers)
    threads = []
    for i in range(n + trainers):
        student = Student(host, port, tally, rngs[i])
        work = (lambda s=student, i=i: s.draw(pictures, sizes, i % EXPLORERS == 0)) if i < n \
            else student.train  # fmt: skip
        threads.append(threading.Thread(target=work, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=ramp + seconds + 600)
    cpu, answered = cpu_seconds(pid) - cpu, tally.answered
    ms = np.array(tally.predict) * 1000 if tally.predict else np.array([np.nan])
    explorer = np.array(tally.neuron) * 1000 if tally.neuron else np.array([np.nan])
    return {
        "students": n,
        "answers_per_s": len(tally.predict) / seconds,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "errors": len(tally.errors),
        "first_error": tally.errors[0] if tally.errors else "",
        "neuron_p50": float(np.percentile(explorer, 50)),
        "neuron_p99": float(np.percentile(explorer, 99)),
        "runs": len(tally.runs),
        "run_s": float(np.median(tally.runs)) if tally.runs else float("nan"),
        "busy": tally.busy,
        "cpu_ms": 1000 * cpu / max(answered, 1),
    }


# -- what one request costs ---------------------------------------------------------------


def timed(work, repeat: int) -> float:
    """Milliseconds of the fastest of ``repeat`` calls of ``work()`` (after one): what it
    costs when nothing else takes the core, as timeit has it."""
    work()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return 1000 * min(times)


def costs(model: Path, pad: np.ndarray, repeat: int) -> dict[str, dict[str, float]]:
    """Milliseconds of each part of /api/predict's work, in this process, for the pad
    (uint8 (280, 280)) sent each way: the request's JSON read, the picture decoded,
    preprocessed, the network's forward pass, and the answer's JSON."""
    from pydantic import TypeAdapter

    from digitnet.files.modelfile import load
    from digitnet.server.pictures import decode_grey, decode_png_data_url
    from digitnet.server.routes.predict import answer
    from digitnet.server.schemas import PredictRequest, PredictResponse
    from digitnet.vision.preprocess import open_picture, to_mnist
    from digitnet.vision.recognise import predict_pixels

    net = load(model).network
    adapter = TypeAdapter(PredictResponse)

    def parts(body: bytes, decode) -> dict[str, float]:
        request = PredictRequest.model_validate_json(body)
        picture = decode(request)
        x = to_mnist(picture)
        full = answer(net, x)
        forward = timed(lambda: predict_pixels(net, x), repeat)
        return {
            "body (KB)": len(body) / 1024,
            "request JSON": timed(lambda: PredictRequest.model_validate_json(body), repeat),
            "decode": timed(lambda: decode(request), repeat),
            "preprocess": timed(lambda: to_mnist(picture), repeat),
            "forward": forward,
            "answer JSON": timed(lambda: answer(net, x), repeat) - forward
            + timed(lambda: adapter.dump_json(adapter.validate_python(full)), repeat),
        }

    out = {
        "png": parts(png_body(pad), lambda r: open_picture(decode_png_data_url(r.image))),
        "grey": parts(grey_body(pad), lambda r: Image.fromarray(decode_grey(r.grey))),
    }
    for part in out.values():
        part["in all"] = sum(v for k, v in part.items() if k != "body (KB)")
    return out


# -- the report ----------------------------------------------------------------------------


def quick_model(folder: Path) -> Path:
    """A model trained for two epochs (``digitnet train``), for runs without --model."""
    path = folder / "model.safetensors"
    command = [sys.executable, "-m", "digitnet", "train", "--epochs", "2", "--quiet"]
    subprocess.run([*command, "--out", str(path)], check=True, stdout=subprocess.DEVNULL)
    return path


def report(rows: list[dict], parts: dict[str, dict[str, float]], trainers: int,
           seconds: float, load: tuple[float, float], repeat: int) -> str:  # fmt: skip
    """The Markdown results: the machine, a row per class size, the largest N, the costs."""
    lines = [
        f"A class against `digitnet serve` on loopback, {date.today().isoformat()}: "
        f"{machine()}, {os.cpu_count()} cores, {blas()}; load average "
        f"{load[0]:.2f} before, {load[1]:.2f} after. Each row: {seconds:g} s of N students "
        f"drawing (one in {EXPLORERS} also opening the explorer) and {trainers} training "
        f"{TRAIN_EPOCHS}-epoch runs, client and server on the same cores.",
        "",
        "| sends | students | answers/s | p50 (ms) | p99 (ms) | errors | explorer p99 (ms) "
        "| training runs (409 busy) | server CPU per answer (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['send']} | {r['students']} | {r['answers_per_s']:.0f} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['errors']} | {r['neuron_p99']:.0f} | "
            f"{r['runs']} ({r['busy']}) | {r['cpu_ms']:.2f} |"
        )
    lines.append("")
    for send in dict.fromkeys(r["send"] for r in rows):
        held = [r["students"] for r in rows if r["send"] == send and r["errors"] == 0
                and r["p99"] < P99_LIMIT_MS]  # fmt: skip
        best = f"**{max(held)}**" if held else "none of those tried"
        lines.append(f"Largest class with p99 < {P99_LIMIT_MS:g} ms and no error, "
                     f"sending {send}: {best}.  ")  # fmt: skip
    names = list(next(iter(parts.values())))
    lines += [
        "",
        "What one request costs in process (ms, the fastest of "
        f"{repeat} runs; a 280x280 pad of a digit):",
        "",
        "| sends | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for send, part in parts.items():
        lines.append(f"| {send} | " + " | ".join(f"{part[k]:.3f}" for k in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: train a quick one)")
    parser.add_argument("--students", default="20,40,60,80", help="class sizes to play")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per size")
    parser.add_argument("--send", default="grey,png", help="what the page sends: grey, png")
    parser.add_argument("--trainers", type=int, default=2, help="students training")
    parser.add_argument("--drawings", type=int, default=30, help="different drawings")
    parser.add_argument("--repeat", type=int, default=200, help="timings of each cost")
    parser.add_argument("--out", type=Path, help="write the Markdown results here")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.students.split(",")]
    sends = args.send.split(",")
    if not set(sends) <= set(BODIES) or min(sizes) < 1 or args.seconds <= 0 or args.repeat < 1:
        parser.error(f"expected --send from {sorted(BODIES)}, --students >= 1, --seconds > 0 "
                     f"and --repeat >= 1, got {args.send!r}, {args.students!r}, "
                     f"{args.seconds}, {args.repeat}")  # fmt: skip
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or quick_model(Path(tmp))
        process, host, port = start_server(model)
        try:
            warm = Student(host, port, Tally(0.0, 0.0), np.random.default_rng(0))
            shape = json.loads(warm.call("GET", "/api/model")[1])["sizes"]
            warm.call("GET", "/api/neuron?layer=1&index=0")  # builds the explorer's atlas
            rows = []
            for send in sends:
                pictures = drawings(args.drawings, send)
                for frames in pictures[0].frames * 10:
                    warm.predict(frames[-1])
                for n in sizes:
                    server = (process.pid, host, port)
                    played = lesson(server, pictures, shape, n, args.trainers, args.seconds)
                    result = {"send": send, **played}
                    rows.append(result)
                    print(f"{send:5s} N={n:<4d} {result['answers_per_s']:6.0f} answers/s  "
                          f"p50 {result['p50']:7.1f} ms  p99 {result['p99']:7.1f} ms  "
                          f"errors {result['errors']}  runs {result['runs']}  "
                          f"server CPU {result['cpu_ms']:.2f} ms/answer "
                          f"{result['first_error']}", flush=True)  # fmt: skip
        finally:
            process.terminate()
            process.communicate(timeout=10)
        pad = render(variant(7, np.random.default_rng(0)), PENS["normal"])[-1][-1]
        parts = costs(model, pad, args.repeat)
    loads = (before, os.getloadavg()[0])
    text = report(rows, parts, args.trainers, args.seconds, loads, args.repeat)
    return publish(text, args.out, rows)


if __name__ == "__main__":
    raise SystemExit(main())
