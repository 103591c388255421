"""A sweep's worker processes and the run that starts them: ``prepare`` checks
everything and queues the grid, ``start_workers`` starts K processes that each
``work`` through the queue with one BLAS thread, ``watch`` follows the study until
they end, ``stop_workers`` stops them.  A worker stops with the process that started
it, however that ends (``die_with_parent``), and marks its trial failed on the way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import service
from ..config import TrainConfig, TrainingDiverged
from ..files.modelfile import expected_bytes
from ..files.paths import check_output
from . import (
    DEFAULT_STUDY,
    PLOT,
    Sweep,
    TrialResult,
    claim,
    duplicate_of,
    model_name,
    open_storage,
    open_study,
    queue_grid,
    release_stale,
    results,
    running,
    sizes_name,
)

# -- a worker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What a worker process needs: the sweep, where its study is, where models go."""

    sweep: Sweep
    out: str
    storage: str | None = None
    study: str = DEFAULT_STUDY

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "sweep": self.sweep.to_dict()})

    @classmethod
    def from_json(cls, text: str) -> Job:
        d = json.loads(text)
        s = d.pop("sweep")
        sweep = Sweep(
            tuple(tuple(x) for x in s.pop("sizes")),
            tuple(s.pop("activations")),
            tuple(s.pop("lrs")),
            **s,
        )
        return cls(sweep, **d)


#: Whether SIGINT can be held back while a worker writes to its study (POSIX).
_CAN_HOLD = hasattr(signal, "pthread_sigmask")


@contextmanager
def _holding_interrupts() -> Iterator[None]:
    """SIGINT (Ctrl-C, or ``stop_workers``) held pending inside this block, except
    within ``_interruptible``, so it never lands halfway through a write to the
    study; afterwards the signal mask is as it was (and a held SIGINT is felt)."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if _CAN_HOLD else None
    try:
        yield
    finally:
        if _CAN_HOLD:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT felt at once inside this block (training: ``fit`` stops cleanly)."""
    if _CAN_HOLD:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if _CAN_HOLD:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _interrupt_pending() -> bool:
    return _CAN_HOLD and signal.SIGINT in signal.sigpending()


def train_trial(params: dict, sweep: Sweep, data, out: Path) -> tuple[TrialResult, float | None]:
    """Train, score and save one trial's network (``service``); (result, best
    validation accuracy).  KeyboardInterrupt if training was interrupted (nothing is
    saved then)."""
    config = sweep.config(params)
    with _interruptible():
        run = service.train(config, data, keep_interrupted=False)
    if not run.kept:
        raise KeyboardInterrupt
    path = Path(out, model_name(params)).resolve()
    service.save(path, run)
    history = run.history
    best = history.epochs[history.best_epoch - 1].val_accuracy
    result = TrialResult(
        config.sizes, config.activation, run.net.n_parameters, run.evaluation.accuracy,
        round(run.seconds, 3), str(path), config.lr, config.epochs, config.seed, best,
    )  # fmt: skip
    return result, best


def _next_trial(study, storage, sweep: Sweep):
    """(trial, its parameters) for this worker to train, or None when none is left."""
    from optuna.trial import TrialState

    if sweep.sampler == "grid":
        trial = claim(study, storage)
    else:
        live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        full = len(study.get_trials(deepcopy=False, states=live)) >= sweep.size()
        trial = None if full else study.ask()
    if trial is None:
        return None
    # a queued trial gets its queued values back; others, the sampler's choice
    params = {name: trial.suggest_categorical(name, v) for name, v in sweep.choices().items()}
    return trial, params


def work(job: Job) -> int:
    """Run trials of ``job``'s study until none is left (or, for a search sampler,
    until the study has its ``trials``); how many this worker finished.  SIGINT stops
    the trial in training (marked failed, to be trained again) and the worker."""
    from optuna.trial import TrialState
    from threadpoolctl import threadpool_limits

    from ..files.data import load_mnist

    with _holding_interrupts(), threadpool_limits(1):
        storage = open_storage(job.storage, Path(job.out))
        study = open_study(storage, job.study, job.sweep)
        data = load_mnist()
        finished = 0
        while not _interrupt_pending():
            taken = _next_trial(study, storage, job.sweep)
            if taken is None:
                break
            trial, params = taken
            try:
                finished += _run_trial(study, trial, params, job, data)
            except BaseException:  # interrupted wherever it landed: trained again later
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
    return finished


def _run_trial(study, trial, params: dict, job: Job, data) -> bool:
    """Train one claimed trial and tell the study how it went; whether it finished.
    A copy of an earlier trial is dropped; an interruption is passed on."""
    from optuna.trial import TrialState

    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    if job.sweep.sampler == "grid":
        earlier = duplicate_of(study, trial.number, params)
        if earlier is not None:
            trial.set_user_attr("duplicate_of", earlier)
            study.tell(trial, state=TrialState.FAIL)
            return False
    try:
        result, best = train_trial(params, job.sweep, data, Path(job.out))
    except TrainingDiverged as e:
        trial.set_user_attr("error", str(e))
        study.tell(trial, state=TrialState.FAIL)
        return False
    except BaseException as e:  # interrupted, or a model that cannot be saved (``work``)
        trial.set_user_attr("error", str(e) or type(e).__name__)
        raise
    for key in ("n_parameters", "test_accuracy", "seconds", "model"):
        trial.set_user_attr(key, getattr(result, key))
    study.tell(trial, best if best is not None else result.test_accuracy)
    return True


# -- the whole sweep -----------------------------------------------------------------------


def prepare(job: Job, workers: int):
    """Before any training: check every output path and size, open the study, queue
    the grid, release trials of dead workers here.  The study back."""
    from ..limits import check_training_size

    out = Path(job.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if not 1 <= workers <= 256:
        raise ValueError(f"workers must be 1-256, got {workers}")
    for sizes in job.sweep.sizes:
        if sizes[0] != 784 or sizes[-1] < 10:
            raise ValueError(
                f"sizes {sizes_name(sizes)}: MNIST needs 784 inputs and at least 10 outputs"
            )
        check_training_size(sizes, TrainConfig.batch_size, 55_000, TrainConfig.validation)
    out.mkdir(parents=True, exist_ok=True)
    grid = job.sweep.grid()
    for params in grid:
        check_output(out / model_name(params), what="--out")
    models = sum(expected_bytes(job.sweep.config(params).sizes) for params in grid)
    check_output(out / PLOT, size=models, what="--out")  # room for every model file
    storage = open_storage(job.storage, out)
    study = open_study(storage, job.study, job.sweep)
    release_stale(study)
    if job.sweep.sampler == "grid":
        queue_grid(study, job.sweep)
    return study


#: Seconds a worker has, once its parent is gone, to stop and mark its trial failed;
#: past them it is killed (the next run releases its trial: ``release_stale``).
ORPHAN_GRACE = 30.0


def die_with_parent(parent: int, poll: float = 0.5, grace: float = ORPHAN_GRACE) -> None:
    """Have SIGINT sent to this process when ``parent`` (its parent's id) ends, however
    it ends, SIGKILL included: so a worker stops, its trial marked failed, instead of
    training on for nobody; and SIGKILL ``grace`` seconds later if it is still there
    (stuck where SIGINT cannot reach it).  On Linux the kernel sends the SIGINT
    (``prctl(PR_SET_PDEATHSIG)``, which counts the parent's thread that started this
    process: ``start_workers`` runs on the thread that watches the sweep); elsewhere,
    and for the SIGKILL, a daemon thread sees the parent's id change within ``poll``
    seconds."""
    import ctypes
    import threading

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pdeathsig = sys.platform.startswith("linux") and libc.prctl(1, signal.SIGINT, 0, 0, 0) == 0
    except (OSError, AttributeError):
        pdeathsig = False
    kernel_tells = pdeathsig and os.getppid() == parent  # else gone before it was asked

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        if not kernel_tells:
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(grace)
        os.kill(os.getpid(), signal.SIGKILL)

    # started with SIGINT blocked, so that it never takes a SIGINT meant for the trial
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if _CAN_HOLD else None
    try:
        threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    finally:
        if _CAN_HOLD:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


def start_workers(job: Job, workers: int) -> list[tuple[subprocess.Popen, object]]:
    """K worker processes, each in a session of its own (so a Ctrl-C in the terminal
    reaches them once, through ``stop_workers``), with its error output kept.  Each
    stops when this process ends, however it ends (``die_with_parent``)."""
    code = (
        "import sys; from digitnet.cli import sweep_worker; "
        "sys.exit(sweep_worker(sys.argv[1], int(sys.argv[2])))"
    )
    started = []
    for _ in range(workers):
        log = tempfile.TemporaryFile("w+")
        process = subprocess.Popen(
            [sys.executable, "-c", code, job.to_json(), str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        started.append((process, log))
    return started


def stop_workers(started, timeout: float = 60) -> None:
    """Ask each worker to stop (SIGINT: its trial is marked failed) and wait for it."""
    for process, _ in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for process, _ in started:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _signal_of(returncode: int | None) -> str | None:
    """The signal that stopped a worker ("SIGINT": it ended its trial and exited 130;
    "SIGKILL": killed by it), or None for a worker that ran to its end or is running."""
    if returncode == 130:
        return "SIGINT"
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return None


def stopped_workers(started) -> list[str]:
    """The signal that stopped each worker which did not run to its end."""
    return [name for process, _ in started if (name := _signal_of(process.returncode))]


def worker_errors(started) -> list[str]:
    """The last line each failed worker wrote, for workers that exited with an error."""
    errors = []
    for process, log in started:
        if process.returncode not in (0, None) and _signal_of(process.returncode) is None:
            log.seek(0)
            lines = [line for line in log.read().splitlines() if line.strip()]
            errors.append(lines[-1] if lines else f"a worker exited with code {process.returncode}")
    return errors


#: Longest a sweep whose own trials are done waits for those other machines train.
OTHERS_WAIT = 600.0


def wait_for_others(
    study, on_change: Callable[[list[TrialResult], list[dict]], None], say,
    poll: float = 0.5, limit: float = OTHERS_WAIT,
) -> None:  # fmt: skip
    """After this machine's workers have exited: wait, at most ``limit`` seconds, for
    the trials that other machines sharing the study are still training, so that the
    report shows the whole study; ``on_change`` as in ``watch``."""
    deadline, told = time.monotonic() + limit, False
    while (training := running(study)) and time.monotonic() < deadline:
        if not told:
            say(f"waiting for {len(training)} trial(s) other machines are training", flush=True)
            told = True
        on_change(results(study), training)
        time.sleep(poll)


def watch(
    study, started, on_change: Callable[[list[TrialResult], list[dict]], None], poll: float = 0.5
) -> None:
    """Until every worker has exited: call ``on_change(finished, running)`` whenever the
    study's finished or running trials change."""
    seen = None
    while True:
        done = all(process.poll() is not None for process, _ in started)
        state = results(study), running(study)
        key = ([r.number for r in state[0]], state[1])
        if key != seen:
            seen = key
            on_change(*state)
        if done:
            return
        time.sleep(poll)
