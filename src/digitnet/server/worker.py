"""One training run in a process of its own, for the server (``digitnet.server.jobs``):

    python -m digitnet.server.worker '{"sizes": [784, 16, 16, 10], "epochs": 40, ...}'

The argument is a ``TrainConfig`` as JSON.  It trains with ``service.train`` on the
MNIST that ships with digitnet, with one BLAS thread and at a lower priority than
the server, and writes one JSON object a line to stdout:

- ``{"event": "epoch", "record": Epoch, "params": P}`` after each epoch, P being the
  current weights and biases (``Network.params``) as base64 little-endian float32;
- ``{"event": "done", "info": config.record(...), "params": P}`` at the end, with the
  best weights, ready for ``modelfile.save``;
- ``{"event": "error", "message": "..."}`` when it cannot train.

With ``--add`` after the config, the first line on stdin holds digits to train on
besides MNIST (``read_added``).  A line ``stop`` on stdin, or stdin closing (the
server has gone), ends the run after the batch in progress; the best weights so far
are kept, as Ctrl-C does for ``digitnet train``.  Nothing is written to disk.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import threading
from dataclasses import asdict, replace

import numpy as np
from threadpoolctl import threadpool_limits

from .. import service
from ..config import TrainConfig
from ..files.data import load_mnist, with_added
from ..train import resolve_kernel

#: Priority the run gets below the server's (Unix ``nice``), so predictions go first.
NICENESS = 10


def encode(params: np.ndarray) -> str:
    """A flat parameter vector (P,) as base64 of little-endian float32."""
    return base64.b64encode(np.ascontiguousarray(params, dtype="<f4").tobytes()).decode("ascii")


def decode(text: str, n: int) -> np.ndarray:
    """``encode``'s text back to a float32 vector (n,); ValueError if it is not one of
    n finite numbers."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 4 * n:
        raise ValueError(f"expected {n} parameters, got {len(raw) // 4}")
    params = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(params).all():
        raise ValueError("the parameters hold NaN or infinite values")
    return params


def watch_for_stop(stop: threading.Event) -> None:
    """Set ``stop`` on a line ``stop`` on stdin, or when stdin closes."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message, allow_nan=False) + "\n")
    sys.stdout.flush()


def read_added(line: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The digits to add (``jobs.added_digits``' line): images (M, 784) uint8, labels
    (M,), and how many times an epoch each is shown."""
    added = json.loads(line)
    images = np.frombuffer(base64.b64decode(added["images"]), np.uint8).reshape(-1, 784)
    return images, np.array(added["labels"], np.uint8), int(added["weight"])


def run(config: TrainConfig, stop: threading.Event, added=None) -> dict:
    """Train as ``config`` says (``service.train``), on MNIST plus ``added`` (images,
    labels, weight: ``files.data.with_added``) if given; the last message."""
    nothing = {"event": "error", "message": "stopped before the first epoch ended: nothing kept"}
    config = replace(config, kernel=resolve_kernel(config))  # compiled only if already built
    data, name = load_mnist(), "MNIST"
    if added is not None:
        data = with_added(data, *added)
        name = f"MNIST + {len(added[1]):,} added digits x{added[2]}"
    if stop.is_set():
        return nothing
    newest: dict = {}

    def on_batch(done: int, total: int) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # fit ends the run and keeps the best weights so far

    def on_state(state) -> None:
        newest["params"] = state.params

    def on_epoch(epoch) -> None:
        emit({"event": "epoch", "record": asdict(epoch), "params": encode(newest["params"])})

    run = service.train(
        config, data, on_batch=on_batch, on_epoch=on_epoch, on_state=on_state, data_name=name
    )
    if not run.kept:
        return nothing
    return {"event": "done", "info": run.info, "params": encode(run.net.params)}


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the server's
    if hasattr(os, "nice"):
        os.nice(NICENESS)
    stop = threading.Event()
    try:
        try:
            # "--add": the first line on stdin is the digits to add (before any "stop")
            added = read_added(sys.stdin.readline()) if "--add" in argv[2:] else None
            threading.Thread(target=watch_for_stop, args=(stop,), daemon=True).start()
            config = TrainConfig.from_dict(json.loads(argv[1]))
            with threadpool_limits(1), np.errstate(over="ignore", invalid="ignore"):
                last = run(config, stop, added)
        except (ValueError, MemoryError) as e:  # TrainingDiverged, SizeError, ...
            last = {"event": "error", "message": str(e) or type(e).__name__}
        emit(last)
    except BrokenPipeError:  # the server has gone: nobody to tell
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0 if last["event"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
