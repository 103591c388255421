"""Training runs the server starts for the page: what a request may ask for, its
estimated work, the queue of runs, and each run itself in a worker process
(``python -m digitnet.server.worker``), one at a time.

Runs queue in the order they were asked for; one trains while the others wait (the
machine's cores go to one run and the server).  Each run belongs to the client that
asked for it (``owner``) and carries a name; only its owner or the teacher stops it.
A run's work is estimated from its FLOPs before it is queued (``estimate_seconds``)
and refused over ``WORK_BUDGET``; a run still training ``WORK_BUDGET`` seconds after
it started is stopped (keeping its best weights), so no run holds the queue longer.

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
import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..config import TrainConfig
from ..files.data import MAX_ADD_WEIGHT
from ..files.modelfile import Model
from ..files.paths import OutputError
from ..learn.network import Network
from ..settings import SETTINGS, PageSizes, Setting, page_settings, short
from .budget import WORK_BUDGET, Refused, check_budget
from .models import Models
from .worker import NICENESS, decode

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
STOP_GRACE = 4.0
#: Runs waiting at most (beyond that, 503); and runs one client may have waiting or training.
QUEUE_LIMIT = 40
PER_CLIENT = 1
#: Longest name a run may be given.
NAME_LENGTH = 40
#: The most digits of one's own a request may add to MNIST (``add``), each 28x28.
MAX_ADDED = 5000


class RequestError(ValueError):
    """A bad training request: ``field`` names the culprit."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.field = name


def limits(spec: dict[str, Setting] = SETTINGS) -> dict:
    """The bounds a request must keep where the page allows less than the library, as
    the page shows them: ``{"epochs": 100, "hidden_layers": 4, ...}``."""
    bounds: dict[str, int] = {}
    for s in page_settings(spec).values():
        bounds.update(s.page.limits())
    return bounds


def queue_limits(trainer: Trainer) -> dict:
    """The bounds on the work a run may ask for and on the queue: the budget in seconds
    (``work_seconds``), the runs that may wait (``queue``) and per client."""
    return {"work_seconds": trainer.budget, "queue": QUEUE_LIMIT, "per_client": PER_CLIENT}


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


class Added(NamedTuple):
    """Digits a run trains on besides MNIST: the one JSON line the worker reads on its
    stdin, and the pictures they add to an epoch (digits × weight, for the budget)."""

    line: bytes
    pictures: int


def added_digits(body: object) -> tuple[dict, Added | None]:
    """A request's JSON object without its ``add`` and ``add_weight``, and those two as
    ``Added`` (None without ``add``): ``add`` is
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
    return rest, Added(json.dumps(line).encode() + b"\n", len(labels) * weight)


def first_layer(net: Network, digits: int = 3) -> list[list[float]]:
    """The incoming weights of the first ``PICTURES`` neurons of layer 1, rounded:
    each row (784,) is one neuron's weight picture."""
    return np.round(net.W[0][:PICTURES].astype(np.float64), digits).tolist()


def network_of(config: TrainConfig, params: str) -> Network:
    """The network of ``config`` holding the worker's parameters (``worker.encode``)."""
    net = Network(config.sizes, config.activation, config.output)
    net.params[...] = decode(params, net.params.size)
    return net


def tag(owner: str) -> str:
    """A short tag that tells one client's runs from another's without showing any of
    its id (4 hex digits of its SHA-256)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:4] if owner else "a script"


def check_name(value: object) -> str:
    """A run's name as a request gives it: 1-``NAME_LENGTH`` printable characters, or
    RequestError naming ``name``."""
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= NAME_LENGTH or (
        not value.isprintable()
    ):
        expected = f"expected a text of 1-{NAME_LENGTH} characters"
        raise RequestError("name", f"{expected}, got {short(value)}")
    return value.strip()


@dataclass
class Job:
    """One training run: its id (also the id of the model it makes), its config, the
    client that asked for it (``owner``) and its ``name``, its estimated seconds, the
    events so far as server-sent events' text, and its state."""

    id: str
    config: TrainConfig
    owner: str = ""
    name: str = ""
    estimate: float = 0.0
    pace: float = 0.0  # seconds at least from one epoch to the next
    added: Added | None = None  # digits to train on besides MNIST (``added_digits``)
    events: list[str] = field(default_factory=list)
    state: str = "queued"  # queued, running, stopping, done, error
    stopped_by: str | None = None  # owner, teacher or budget, when stopped
    told: int = 0  # the queue position its events last said
    process: asyncio.subprocess.Process | None = None
    deadline: asyncio.TimerHandle | None = None  # the budget's stop
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "error")

    def public(self, client: str | None, position: int) -> dict:
        """What any client may see of the run: ``mine`` when ``client`` asked for it."""
        return {
            "id": self.id, "name": self.name, "epochs": self.config.epochs, "state": self.state,
            "position": position, "mine": bool(client) and client == self.owner,
        }  # fmt: skip

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
    """Queues, starts, follows and stops training runs, one training at a time, the
    others waiting in order, putting what they make into ``models``.  ``budget``: the
    most seconds a run may take (``WORK_BUDGET``).  ``on_warning(text)`` hears of what
    went wrong beside the run (a model that could not be saved to the folder); by
    default the server's log.  ``enabled`` False refuses new runs (the teacher's switch)."""

    def __init__(self, models: Models, on_warning=None, budget: float = WORK_BUDGET) -> None:
        self.models = models
        self.budget = budget
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.running: Job | None = None
        self.waiting: list[Job] = []
        self.enabled = True
        self.on_warning = on_warning or logging.getLogger("uvicorn.error").warning
        self._tasks: set[asyncio.Task] = set()
        self._stop_by: float | None = None  # loop time by which stopped workers must end

    def position(self, job: Job) -> int:
        """0 for a run training or ended, n for the n-th run waiting."""
        return self.waiting.index(job) + 1 if job in self.waiting else 0

    def queue(self, client: str | None = None) -> list[dict]:
        """The run training (if any) and those waiting, in order, as ``Job.public``."""
        jobs = ([self.running] if self.running else []) + self.waiting
        return [job.public(client, self.position(job)) for job in jobs]

    async def start(
        self,
        config: TrainConfig,
        owner: str = "",
        name: str | None = None,
        pace: float = 0.0,
        added: Added | None = None,
    ) -> Job:
        """Queue a run of ``config`` for the client ``owner`` (it trains at once when
        none does), at least ``pace`` seconds from one epoch to the next, on MNIST and
        the digits of ``added`` (``added_digits``, its line handed to the worker on
        its stdin); Refused, before any work, when it cannot be queued."""
        if not self.enabled:
            raise Refused(403, "training is switched off for now by the teacher")
        estimate = check_budget(config, self.budget, pace, added.pictures if added else 0)
        mine = [j for j in self.jobs.values() if owner and j.owner == owner and not j.finished]
        if len(mine) >= PER_CLIENT:
            raise Refused(
                429, f"you already have a training {mine[0].state} ({mine[0].id}); wait for it "
                f"to end or stop it with DELETE /api/train/{mine[0].id}",
            )  # fmt: skip
        if len(self.waiting) >= QUEUE_LIMIT:
            raise Refused(503, f"the queue is full ({QUEUE_LIMIT} runs waiting); try again later")
        name = name or f"{'-'.join(map(str, config.sizes))} by {tag(owner)}"
        job_id = self.models.new_id(taken=self.jobs, claim=True)
        job = Job(job_id, config, owner, name, estimate, pace, added)
        self.models.owners[job.id], self.models.names[job.id] = owner, name
        self.jobs[job.id] = job
        ended = [i for i, j in self.jobs.items() if j.finished]
        for oldest in ended[: max(0, len(ended) - KEPT_JOBS)]:
            del self.jobs[oldest]
        self.waiting.append(job)
        await self._advance()
        return job

    def find(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def stop(self, job: Job, by: str = "owner") -> str:
        """End a run: a waiting one leaves the queue at once (nothing trained: an error
        event), a training one after its current batch, keeping its best weights.
        ``by``: who stopped it (owner, teacher, budget).  The run's state after."""
        if job.finished:
            return job.state
        job.stopped_by = job.stopped_by or by
        if job in self.waiting:
            self.waiting.remove(job)
            self.models.drop(job.id)
            who = "by its owner" if by == "owner" else f"by the {by}"
            await job.add("error", {"message": f"stopped {who} while waiting: nothing trained"},
                          "error")  # fmt: skip
            await self._advance()
            return job.state
        self._ask_to_stop(job)
        return job.state

    def _ask_to_stop(self, job: Job) -> None:
        """Tell a training run's worker to end after its current batch."""
        if job.finished or job.process is None or job.process.stdin is None:
            return
        job.state = "stopping"
        try:
            job.process.stdin.write(b"stop\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _over_budget(self, job: Job) -> None:
        job.stopped_by = job.stopped_by or "budget"
        self._ask_to_stop(job)

    async def switch(self, enabled: bool, by: str = "teacher") -> None:
        """Allow or refuse new runs; switching off also empties the queue (the run
        training goes on: stop it by its id)."""
        self.enabled = enabled
        if not enabled:
            for job in list(self.waiting):
                await self.stop(job, by)

    def stop_on_signals(self) -> None:
        """From now on, SIGTERM and SIGINT also stop every run at once, so that workers
        end while the server drains its connections rather than after (only from the
        main thread, where the server's own handlers are)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum, frame, previous=previous) -> None:
                previous(signum, frame)
                loop.call_soon_threadsafe(self._stop_now)

            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread: the server handles signals elsewhere
                return

    def _stop_now(self) -> None:
        """At a stop signal: refuse new runs, stop the training one, empty the queue."""
        self.enabled = False
        self._stop_by = asyncio.get_running_loop().time() + STOP_GRACE
        if self.running is not None:
            self._ask_to_stop(self.running)
        task = asyncio.ensure_future(self.switch(False, "server"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every run (a training worker gets until ``STOP_GRACE`` seconds after
        the stop signal, or after now, to hand over its weights), at server shutdown."""
        loop = asyncio.get_running_loop()
        await self.switch(False, "server")
        stop_by = self._stop_by or loop.time() + STOP_GRACE
        for job in list(self.jobs.values()):
            if job.process is None or job.process.returncode is not None:
                continue
            self._ask_to_stop(job)
            try:
                await asyncio.wait_for(job.process.wait(), max(0.1, stop_by - loop.time()))
            except asyncio.TimeoutError:
                job.process.kill()
                await job.process.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _advance(self) -> None:
        """Start the next waiting run when none trains, and tell each waiting run its
        place when it has changed."""
        while self.running is None and self.waiting:
            await self._launch(self.waiting.pop(0))
        for job in self.waiting:
            if job.told != self.position(job):
                job.told = self.position(job)
                await job.add("queued", {"position": job.told, "ahead": job.told})

    async def _launch(self, job: Job) -> None:
        """Start ``job``'s worker; a run that cannot start ends in an error event."""
        self.running, job.state = job, "running"
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        try:
            job.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "digitnet.server.worker",
                json.dumps({**job.config.to_dict(), "pace": job.pace}), str(os.getpid()),
                *(["--add"] if job.added else []),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=LINE_LIMIT,
            )  # fmt: skip
        except OSError as e:
            self.running = None
            self.models.drop(job.id)
            await job.add("error", {"message": f"cannot start a training process ({e})"}, "error")
            return
        lower_priority(job.process.pid)
        if job.added:  # the worker reads them first; the memory is let go
            job.process.stdin.write(job.added.line)
            job.added = None
        if job.told:  # it waited: say it has begun
            await job.add("started", {"position": 0})
        job.deadline = asyncio.get_running_loop().call_later(self.budget, self._over_budget, job)
        task = asyncio.create_task(self._follow(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
                "name": job.name,
                "epochs": len(history["epochs"]),
                "best_epoch": history["best_epoch"],
                "stopped": history["stopped"],
                "stopped_by": job.stopped_by,
            })  # fmt: skip
            return True
        budget = job.stopped_by == "budget"
        why = f" (stopped at the work budget of {self.budget:g} s)" if budget else ""
        await self._fail(job, str(message["message"]) + why)
        return True

    async def _fail(self, job: Job, message: str) -> None:
        self.models.drop(job.id)
        await self._end(job, "error", {"message": message})

    async def _end(self, job: Job, name: str, data: dict) -> None:
        """The last event: the next run starts before anyone hears of it."""
        if job.deadline is not None:
            job.deadline.cancel()
        if self.running is job:
            self.running = None
        await job.add(name, data, name)
        await self._advance()


def lower_priority(pid: int) -> None:
    """Give the worker ``pid`` ``worker.NICENESS`` below the server, from its first
    instruction: while it started at the server's own priority, a class of 60 drawing
    waited up to 200 ms for answers at each run's start (Unix only; a no-op elsewhere)."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):  # it may have ended already
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, pid, min(19, mine + NICENESS))


def event_stream_text(name: str, data: dict) -> str:
    """One server-sent event: its name, and its data as one line of JSON."""
    return f"event: {name}\ndata: {json.dumps(data, allow_nan=False)}\n\n"

