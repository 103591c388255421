"""Training runs the server starts for the page: what a request may ask for, and the
run itself in a worker process (``python -m digitnet.server.worker``), one at a time.

The run happens outside the server's process, so predictions keep answering while
it trains: the worker has its own interpreter (no lock shared with the request
handlers), one BLAS thread and a lower priority.  It talks JSON lines over
its stdout (no pickle); each epoch's weights go into ``Models`` under the run's id,
unlisted, so ``"model": id`` already predicts with the newest weights, and at the end
the best weights become a listed model under that same id.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..config import TrainConfig
from ..files.data import MAX_ADD_WEIGHT
from ..files.modelfile import Model
from ..files.paths import OutputError
from ..learn.network import Network
from ..settings import SETTINGS, PageSizes, Setting, page_settings, short
from .models import Models
from .worker import decode

#: The fields of ``TrainConfig`` a request may set (those declared with a ``page``);
#: the others keep their defaults.
FIELDS = tuple(page_settings())
#: Neurons of the first layer whose incoming weights each epoch event carries.
PICTURES = 16
#: Finished runs remembered, for clients that connect late (a 100-epoch run's events
#: take about 9 MB as text: 90 KB an epoch for the default network's 16 pictures).
KEPT_JOBS = 4
#: Longest line the worker writes (the weights of the largest network allowed, in base64).
LINE_LIMIT = 64 * 1024 * 1024
#: Seconds a stopped worker gets to hand over its weights before it is killed at shutdown.
STOP_GRACE = 5.0
#: The most digits of one's own a request may add to MNIST (``add``), each 28x28.
MAX_ADDED = 5000


class RequestError(ValueError):
    """A bad training request: ``field`` names the culprit."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.field = name


class Busy(RuntimeError):
    """A training is already running."""


def limits(spec: dict[str, Setting] = SETTINGS) -> dict:
    """The bounds a request must keep where the page allows less than the library, as
    the page shows them: ``{"epochs": 100, "hidden_layers": 4, ...}``."""
    bounds: dict[str, int] = {}
    for s in page_settings(spec).values():
        bounds.update(s.page.limits())
    return bounds


def choices(spec: dict[str, Setting] = SETTINGS) -> dict:
    """The names each choice may take, from the registries."""
    return {name: list(s.names) for name, s in page_settings(spec).items() if s.choices}


def defaults(spec: dict[str, Setting] = SETTINGS) -> dict:
    """The request fields' defaults: ``TrainConfig()``'s, as JSON."""
    fields = page_settings(spec).items()
    return {name: list(s.default) if s.kind == "sizes" else s.default for name, s in fields}


def check_setting(s: Setting, value: object) -> object:
    """One request field as the page may ask for it, or RequestError naming it."""
    if isinstance(s.page, PageSizes):
        try:
            return s.page.check(value)
        except ValueError as e:
            raise RequestError(s.name, str(e)) from None
    if not s.accepts(value, page=True):
        comma = ";" if s.choices is not None else ","
        raise RequestError(s.name, f"expected {s.expected(page=True)}{comma} got {short(value)}")
    return float(value) if s.kind == "float" else value


def request_settings(body: object, spec: dict[str, Setting] = SETTINGS) -> dict:
    """A request's JSON object -> its settings, each checked against its declaration
    (the page's bound where it has one); RequestError naming the first bad field."""
    if not isinstance(body, dict):
        raise RequestError("body", f"expected a JSON object, got {short(body)}")
    fields = page_settings(spec)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        allowed = ", ".join(fields)
        raise RequestError(unknown[0], f"not a training setting; expected any of {allowed}")
    return {name: check_setting(fields[name], value) for name, value in body.items()}


def train_config(body: object) -> TrainConfig:
    """A request's JSON object -> the ``TrainConfig`` it asks for (the defaults for
    what it leaves out), or RequestError naming the first bad field and what it may be."""
    settings = request_settings(body)
    try:
        return TrainConfig(**settings, kernel="auto")
    except ValueError as e:  # what TrainConfig checks of the settings together
        culprit = next((name for name in settings if name in str(e)), "body")
        raise RequestError(culprit, str(e)) from None


def added_digits(body: object) -> tuple[dict, bytes | None]:
    """A request's JSON object without its ``add`` and ``add_weight``, and those two as
    the one JSON line the worker reads (None without ``add``): ``add`` is
    ``{"images": [base64 of 784 uint8, white ink on black, row by row, ...], "labels":
    [0-9, ...]}`` (at most ``MAX_ADDED``), ``add_weight`` how many times an epoch each
    is shown (1-``MAX_ADD_WEIGHT``, default 1).  RequestError naming a bad field."""
    if not isinstance(body, dict) or ("add" not in body and "add_weight" not in body):
        return body, None
    rest = {k: v for k, v in body.items() if k not in ("add", "add_weight")}
    add, weight = body.get("add"), body.get("add_weight", 1)
    if type(weight) is not int or not 1 <= weight <= MAX_ADD_WEIGHT:
        expected = f"expected a whole number 1-{MAX_ADD_WEIGHT}"
        raise RequestError("add_weight", f"{expected}, got {short(weight)}")
    if not isinstance(add, dict) or set(add) != {"images", "labels"}:
        raise RequestError("add", f"expected {{images: [...], labels: [...]}}, got {short(add)}")
    images, labels = add["images"], add["labels"]
    if not isinstance(images, list) or not isinstance(labels, list) or len(images) != len(labels):
        raise RequestError("add", "expected lists of images and labels of the same length")
    if not 1 <= len(images) <= MAX_ADDED:
        raise RequestError("add", f"expected 1-{MAX_ADDED} digits, got {len(images)}")
    if not all(type(x) is int and 0 <= x <= 9 for x in labels):
        raise RequestError("add", "expected labels that are whole numbers 0-9")
    pixels = bytearray()
    for i, text in enumerate(images):
        try:
            raw = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 784:
            raise RequestError("add", f"images[{i}]: expected base64 of 784 bytes (28x28 uint8)")
        pixels += raw
    line = {"images": base64.b64encode(bytes(pixels)).decode("ascii"), "labels": labels,
            "weight": weight}  # fmt: skip
    return rest, json.dumps(line).encode() + b"\n"


def first_layer(net: Network, digits: int = 3) -> list[list[float]]:
    """The incoming weights of the first ``PICTURES`` neurons of layer 1, rounded:
    each row (784,) is one neuron's weight picture."""
    return np.round(net.W[0][:PICTURES].astype(np.float64), digits).tolist()


def network_of(config: TrainConfig, params: str) -> Network:
    """The network of ``config`` holding the worker's parameters (``worker.encode``)."""
    net = Network(config.sizes, config.activation, config.output)
    net.params[...] = decode(params, net.params.size)
    return net


@dataclass
class Job:
    """One training run: its id (also the id of the model it makes), its config,
    the events so far as server-sent events' text, and whether it has ended."""

    id: str
    config: TrainConfig
    events: list[str] = field(default_factory=list)
    state: str = "running"  # running, stopping, done, error
    process: asyncio.subprocess.Process | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "error")

    async def add(self, name: str, data: dict, state: str | None = None) -> None:
        async with self.changed:
            self.events.append(event_stream_text(name, data))
            self.state = state or self.state
            self.changed.notify_all()

    async def wait(self, seen: int, timeout: float) -> None:
        """Until there are more than ``seen`` events or the run has ended (at most
        ``timeout`` seconds)."""
        async with self.changed:
            try:
                await asyncio.wait_for(
                    self.changed.wait_for(lambda: len(self.events) > seen or self.finished),
                    timeout,
                )
            except asyncio.TimeoutError:
                pass


class Trainer:
    """Starts, follows and stops training runs, one at a time, putting what they make
    into ``models``.  ``on_warning(text)`` hears of what went wrong beside the run (a
    model that could not be saved to the folder); by default the server's log."""

    def __init__(self, models: Models, on_warning=None) -> None:
        self.models = models
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.running: Job | None = None
        self.on_warning = on_warning or logging.getLogger("uvicorn.error").warning
        self._tasks: set[asyncio.Task] = set()

    async def start(self, config: TrainConfig, added: bytes | None = None) -> Job:
        """A new run of ``config`` in a worker process; Busy while another runs.
        ``added`` (``added_digits``' line) is handed to the worker on its stdin."""
        if self.running is not None:
            raise Busy(
                f"a training is already running ({self.running.id}); wait for it to end or "
                f"stop it with DELETE /api/train/{self.running.id}"
            )
        job = self.running = Job(self.models.new_id(taken=self.jobs), config)
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        try:
            job.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "digitnet.server.worker", json.dumps(config.to_dict()),
                *(["--add"] if added else []),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=LINE_LIMIT,
            )  # fmt: skip
        except BaseException:
            self.running = None
            raise
        if added:
            job.process.stdin.write(added)
        self.jobs[job.id] = job
        while len(self.jobs) > KEPT_JOBS:
            oldest = next(iter(self.jobs))
            if not self.jobs[oldest].finished:
                break
            del self.jobs[oldest]
        task = asyncio.create_task(self._follow(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def find(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def stop(self, job: Job) -> None:
        """Ask a running job to end after its current batch, keeping its best weights."""
        if job.finished or job.process is None or job.process.stdin is None:
            return
        job.state = "stopping"
        try:
            job.process.stdin.write(b"stop\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def close(self) -> None:
        """Stop any run (it gets ``STOP_GRACE`` seconds to hand over its weights), at
        server shutdown."""
        for job in list(self.jobs.values()):
            if job.process is None or job.process.returncode is not None:
                continue
            self.stop(job)
            try:
                await asyncio.wait_for(job.process.wait(), STOP_GRACE)
            except asyncio.TimeoutError:
                job.process.kill()
                await job.process.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, job: Job) -> None:
        """Read the worker's lines until it ends, turning them into events and models."""
        process = job.process
        errors = asyncio.create_task(process.stderr.read())
        ended = False
        try:
            while not ended:
                line = await process.stdout.readline()
                if not line:
                    break
                ended = await self._handle(job, json.loads(line))
        except (ValueError, KeyError, asyncio.LimitOverrunError) as e:
            process.kill()
            await self._fail(job, f"the training process sent something unreadable ({e})")
            ended = True
        code = await process.wait()
        stderr = (await errors).decode(errors="replace").strip().splitlines()
        if not ended:
            why = stderr[-1] if stderr else f"exit code {code}"
            await self._fail(job, f"the training process ended unexpectedly ({why})")

    async def _handle(self, job: Job, message: dict) -> bool:
        """One line from the worker; whether it was the last."""
        kind = message["event"]
        if kind == "epoch":
            net = network_of(job.config, message["params"])
            self.models.put(job.id, Model(net, {"test_accuracy": None}), listed=False)
            r = message["record"]
            await job.add("epoch", {
                "epoch": r["epoch"],
                "cost": r["loss"],
                "accuracy": r["accuracy"],
                "val_accuracy": r["val_accuracy"],
                "lr": r["lr"],
                "seconds": r["seconds"],
                "weights": first_layer(net),
            })  # fmt: skip
            return False
        if kind == "done":
            net = network_of(job.config, message["params"])
            info = message["info"]
            self.models.put(job.id, Model(net, info))
            try:
                await asyncio.to_thread(self.models.save, job.id)
            except OutputError as e:
                self.on_warning(f"warning: model {job.id} kept in memory only: {e}")
            history = info["history"]
            await self._end(job, "done", {
                "test_accuracy": info["test_accuracy"],
                "model": job.id,
                "epochs": len(history["epochs"]),
                "best_epoch": history["best_epoch"],
                "stopped": history["stopped"],
            })  # fmt: skip
            return True
        await self._fail(job, str(message["message"]))
        return True

    async def _fail(self, job: Job, message: str) -> None:
        self.models.drop(job.id)
        await self._end(job, "error", {"message": message})

    async def _end(self, job: Job, name: str, data: dict) -> None:
        """The last event: the server is free for another run before anyone hears of it."""
        if self.running is job:
            self.running = None
        await job.add(name, data, name)


def event_stream_text(name: str, data: dict) -> str:
    """One server-sent event: its name, and its data as one line of JSON."""
    return f"event: {name}\ndata: {json.dumps(data, allow_nan=False)}\n\n"

