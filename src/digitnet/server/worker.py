"""One training run in a process of its own, for the server (``digitnet.server.jobs``):

    python -m digitnet.server.worker '{"sizes": [784, 16, 16, 10], "epochs": 40, ...}'

The argument is a ``TrainConfig`` as JSON, with an optional ``"pace"``: the seconds at
least from one epoch event to the next, so that a person can watch each one (0: no
wait; a stop ends the wait at once).  It trains with ``service.train`` on the
MNIST that ships with digitnet, with one BLAS thread and at a lower priority than
the server, and writes one JSON object a line to stdout:

- ``{"event": "epoch", "record": Epoch, "params": P}`` after each epoch, P being the
  current weights and biases (``Network.params``) as base64 little-endian float32;
- ``{"event": "done", "info": config.record(...), "params": P}`` at the end, with the
  best weights, ready for ``modelfile.save``;
- ``{"event": "error", "message": "..."}`` when it cannot train.

With ``--add`` after the parent's pid, the first line on stdin holds digits to train
on besides MNIST (``read_added``).  A line ``stop`` on stdin, or stdin closing (the
server has gone), ends the run after the batch in progress; the best weights so far
are kept, as Ctrl-C does for ``digitnet train``.  Nothing is written to disk.  The
worker never outlives its server: on Linux the kernel kills it when the server dies
(``PR_SET_PDEATHSIG``), even by SIGKILL; elsewhere stdin closing ends it after the
batch in progress.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, replace

import numpy as np
from threadpoolctl import threadpool_limits

from .. import service
from ..config import TrainConfig
from ..files.data import load_mnist, with_added
from ..train import resolve_kernel

#: Priority the run gets below the server's (Unix ``nice``), so predictions go first:
#: set by the server (``jobs``) the moment the worker starts, so that its start-up
#: (importing, reading the digits, making the distorted twins: seconds of CPU) is
#: low priority too.
NICENESS = 10
#: Linux's prctl option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


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


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent ``parent`` dies (Linux's
    ``prctl(PR_SET_PDEATHSIG)``), and exit at once if it already has; elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took hold
        os._exit(1)


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


def run(config: TrainConfig, stop: threading.Event, pace: float = 0.0, added=None) -> dict:
    """Train as ``config`` says (``service.train``), on MNIST plus ``added`` (images,
    labels, weight: ``files.data.with_added``) if given, each epoch's event at least
    ``pace`` seconds after the one before; the last message (done or error)."""
    nothing = {"event": "error", "message": "stopped before the first epoch ended: nothing kept"}
    config = replace(config, kernel=resolve_kernel(config))  # compiled only if already built
    data, name = load_mnist(), "MNIST"
    if added is not None:
        data = with_added(data, *added)
        name = f"MNIST + {len(added[1]):,} added digits x{added[2]}"
    if stop.is_set():
        return nothing
    newest: dict = {"at": time.monotonic()}

    def on_batch(done: int, total: int) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # fit ends the run and keeps the best weights so far

    def on_state(state) -> None:
        newest["params"] = state.params

    def on_epoch(epoch) -> None:
        stop.wait(max(0.0, newest["at"] + pace - time.monotonic()))  # the pace; a stop ends it
        newest["at"] = time.monotonic()
        emit({"event": "epoch", "record": asdict(epoch), "params": encode(newest["params"])})

    run = service.train(
        config, data, on_batch=on_batch, on_epoch=on_epoch, on_state=on_state, data_name=name
    )
    if not run.kept:
        return nothing
    return {"event": "done", "info": run.info, "params": encode(run.net.params)}


def main(argv: list[str]) -> int:
    """Train the config of ``argv[1]`` (a parent's pid in ``argv[2]``, or the parent
    now), telling the server on stdout; exit code 0 when a model was made."""
    die_with_parent(int(argv[2]) if len(argv) > 2 else os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the server's
    stop = threading.Event()
    try:
        try:
            request = json.loads(argv[1])
            # "--add": the first line on stdin is the digits to add (before any "stop")
            added = read_added(sys.stdin.readline()) if "--add" in argv[2:] else None
            threading.Thread(target=watch_for_stop, args=(stop,), daemon=True).start()
            config = TrainConfig.from_dict(request)
            with threadpool_limits(1), np.errstate(over="ignore", invalid="ignore"):
                last = run(config, stop, float(request.get("pace", 0.0)), added)
        except (ValueError, MemoryError) as e:  # TrainingDiverged, SizeError, ...
            last = {"event": "error", "message": str(e) or type(e).__name__}
        emit(last)
    except BrokenPipeError:  # the server has gone: nobody to tell
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0 if last["event"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
