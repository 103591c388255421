"""Architecture sweeps: many networks trained, each one a trial of an Optuna study.

"What if the hidden layers were bigger?"  A sweep trains every combination of the
given layer sizes, activations, learning rates and seeds (or, with a search sampler,
as many configurations as asked for), keeps each trial's model file, and records its
test accuracy, parameter count and training time for a table and a plot.

The bookkeeping is Optuna's.  A study lives in a storage: by default a journal file
in the output folder, or any SQLAlchemy URL (PostgreSQL, MySQL, SQLite) that several
machines reach, each running the same ``digitnet sweep`` with ``--storage URL
--study NAME``.  The grid goes into the study's trial queue once
(``Study.enqueue_trial``), under Optuna's ``GridSampler``; a worker takes the next
queued trial by moving it from WAITING to RUNNING (``claim``): the journal file
locks for that step, and in a database it is one conditional UPDATE that one worker
wins (SQLite ignores the row lock Optuna's own step relies on), so workers on one
machine or many never train the same trial twice.  (Left to sample the grid by
itself, ``GridSampler`` documents that concurrent workers occasionally repeat a
point.)  The search samplers (TPE, random) ask Optuna for each next configuration,
maximising the validation accuracy: the test accuracy is reported, never used to
choose.

Each worker is a process of its own that trains through ``service.train``
with one BLAS thread, so K workers keep K cores busy; each stops with the process
that started it, however that ends.  A trial interrupted by Ctrl-C is marked failed
and trained again by the next run; finished trials stay finished.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path

from ..config import TrainConfig
from ..files.paths import check_output
from ..settings import SETTINGS

SAMPLERS = ("grid", "tpe", "random")
DEFAULT_STUDY = "digitnet-sweep"
#: The default storage: Optuna's journal file, in the output folder.
JOURNAL = "sweep.journal"
PLOT = "sweep.png"
SUFFIX = ".safetensors"
#: The keys ``--json`` prints for each trial, in this order.
JSON_KEYS = ("sizes", "activation", "n_parameters", "test_accuracy", "seconds", "model")


def _optuna():
    """The ``optuna`` package, or a ValueError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ValueError("digitnet sweep needs Optuna: pip install 'digitnet[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def sizes_name(sizes) -> str:
    """(784, 16, 16, 10) -> "784-16-16-10", as Optuna stores the choice."""
    return "-".join(map(str, sizes))


@dataclass(frozen=True)
class Sweep:
    """What a sweep trains: every combination of ``sizes`` × ``activations`` × ``lrs``
    × seeds 0..``seeds``-1 (the grid), or ``trials`` configurations drawn from those
    choices by a search sampler; each trained for ``epochs`` epochs with the other
    settings of ``TrainConfig()``."""

    sizes: tuple[tuple[int, ...], ...]
    activations: tuple[str, ...] = ("sigmoid",)
    lrs: tuple[float, ...] = (TrainConfig.lr,)
    seeds: int = 1
    epochs: int = 10  # a quarter of the default run: enough to rank architectures
    sampler: str = "grid"  # grid, or a search sampler: tpe or random
    trials: int | None = None  # search samplers: how many trials the study runs in all
    # (workers that ask for the last one at the same moment may each start one)

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("a sweep needs at least one set of layer sizes")
        # each choice is checked as the setting it is (settings.SETTINGS)
        sizes, activation, lr = SETTINGS["sizes"], SETTINGS["activation"], SETTINGS["lr"]
        object.__setattr__(self, "sizes", tuple(sizes.check(s) for s in self.sizes))
        for name in self.activations:
            activation.check(name)
        for value in self.lrs:
            lr.check(value)
        if not self.activations or not self.lrs:
            raise ValueError("a sweep needs at least one activation and one learning rate")
        if not 1 <= self.seeds <= 10_000:
            raise ValueError(f"seeds must be 1-10000, got {self.seeds!r}")
        SETTINGS["epochs"].check(self.epochs)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; expected one of {SAMPLERS}")
        if self.sampler == "grid" and self.trials is not None:
            raise ValueError("the grid sampler trains every combination; trials is for tpe/random")
        if self.sampler != "grid" and (self.trials is None or self.trials < 1):
            raise ValueError(f"the {self.sampler} sampler needs trials >= 1, got {self.trials!r}")

    def choices(self) -> dict[str, list]:
        """Each parameter's values, as Optuna stores them (sizes as "784-16-16-10")."""
        return {
            "sizes": [sizes_name(s) for s in dict.fromkeys(self.sizes)],
            "activation": list(dict.fromkeys(self.activations)),
            "lr": list(dict.fromkeys(self.lrs)),
            "epochs": [self.epochs],
            "seed": list(range(self.seeds)),
        }

    def grid(self) -> list[dict]:
        """Every combination of the choices, in the order given."""
        choices = self.choices()
        return [dict(zip(choices, values, strict=True)) for values in product(*choices.values())]

    def size(self) -> int:
        """How many trials the sweep runs: the grid's size, or ``trials``."""
        return len(self.grid()) if self.sampler == "grid" else int(self.trials)

    def config(self, params: dict) -> TrainConfig:
        """The training run of one trial's parameters."""
        sizes = tuple(int(n) for n in params["sizes"].split("-"))
        chosen = {name: params[name] for name in ("activation", "lr", "epochs", "seed")}
        return TrainConfig(sizes=sizes, **chosen)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = [list(s) for s in self.sizes]
        d["activations"], d["lrs"] = list(self.activations), list(self.lrs)
        return d


def model_name(params: dict) -> str:
    """The file a trial's model is saved in, named by its parameters."""
    p = params
    return f"{p['sizes']}-{p['activation']}-lr{p['lr']:g}-{p['epochs']}ep-seed{p['seed']}" + SUFFIX


@dataclass(frozen=True)
class TrialResult:
    """One finished trial: the network, what it scored, how long it trained (seconds,
    training only), and where its model file is."""

    sizes: tuple[int, ...]
    activation: str
    n_parameters: int
    test_accuracy: float
    seconds: float
    model: str
    lr: float = TrainConfig.lr
    epochs: int = 0
    seed: int = 0
    val_accuracy: float | None = None
    number: int = field(default=0, compare=False)

    def to_json(self) -> dict:
        """The object ``digitnet sweep --json`` prints: exactly ``JSON_KEYS``."""
        values = {**asdict(self), "sizes": list(self.sizes)}
        return {key: values[key] for key in JSON_KEYS}

    @classmethod
    def from_trial(cls, trial) -> TrialResult:
        """From a finished Optuna trial's parameters and user attributes."""
        p, attrs = trial.params, trial.user_attrs
        return cls(
            tuple(int(n) for n in p["sizes"].split("-")), p["activation"],
            int(attrs["n_parameters"]), float(attrs["test_accuracy"]), float(attrs["seconds"]),
            str(attrs["model"]), float(p["lr"]), int(p["epochs"]), int(p["seed"]),
            trial.value, trial.number,
        )  # fmt: skip


# -- the study -----------------------------------------------------------------------------


def open_storage(url: str | None, out: Path):
    """Optuna storage: the journal file ``out/sweep.journal`` when ``url`` is None,
    else the SQLAlchemy database at ``url`` (``sqlite:///sweep.db``,
    ``postgresql://user@host/db``, ...)."""
    optuna = _optuna()
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = check_output(out / JOURNAL)
        return JournalStorage(JournalFileBackend(str(path)))
    check_storage_url(url)
    for attempt in range(3):
        try:  # wrapped as create_study would wrap it, so trials claimed here are seen there
            return optuna.storages.get_storage(optuna.storages.RDBStorage(url))
        except ModuleNotFoundError as e:  # no driver for this kind of database
            raise ValueError(f"storage {url!r}: cannot open it ({e})") from None
        except Exception as e:  # no such host, ...; or another machine making the tables
            if attempt == 2:
                reason = " ".join(str(e).split())[:160] or type(e).__name__
                raise ValueError(f"storage {url!r}: cannot open it ({reason})") from None
            time.sleep(1 + attempt)


def check_storage_url(url: str) -> None:
    """A ValueError, in one line, for a storage URL that is not one, or whose study
    would be lost: an in-memory SQLite database (``sqlite://``, ``sqlite:///``,
    ``sqlite:///:memory:``) is private to each worker process and gone when it ends."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    expected = "expected an SQLAlchemy URL such as sqlite:///sweep.db or postgresql://user@host/db"
    if "://" not in url:
        raise ValueError(f"storage {url!r}: {expected}")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"storage {url!r}: {expected}") from None
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if parsed.get_backend_name() == "sqlite" and (in_memory or "memory" in parsed.query.values()):
        raise ValueError(
            f"storage {url!r}: an in-memory database, private to each worker and lost when "
            "the sweep ends; expected a file (sqlite:///sweep.db) or a server "
            "(postgresql://user@host/db)"
        )
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        kind = parsed.drivername
        raise ValueError(f"storage {url!r}: no database kind {kind!r}; {expected}") from None
    try:  # the driver, at once: SQLAlchemy 2 names its import import_dbapi, 1.4 dbapi
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except ImportError as e:
        extra = " (pip install -e '.[postgresql]')" if "postgresql" in parsed.drivername else ""
        raise ValueError(f"storage {url!r}: cannot open it ({e}){extra}") from None


def sampler_of(sweep: Sweep):
    """Optuna's sampler for ``sweep``: GridSampler over the choices, TPE or random."""
    optuna = _optuna()
    if sweep.sampler == "grid":
        return optuna.samplers.GridSampler(sweep.choices())
    if sweep.sampler == "tpe":
        return optuna.samplers.TPESampler()
    return optuna.samplers.RandomSampler()


def open_study(storage, name: str, sweep: Sweep):
    """The study ``name`` in ``storage``, made if it does not exist.  A study is one
    sweep: joining or resuming it with other settings is refused."""
    optuna = _optuna()
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        sampler=sampler_of(sweep),
        load_if_exists=True,
    )
    settings, wanted = study.user_attrs.get("sweep"), sweep.to_dict()
    if settings is None:
        study.set_user_attr("sweep", wanted)
    elif settings != wanted:
        different = [key for key in wanted if settings.get(key) != wanted[key]]
        raise ValueError(
            f"study {name!r} is a sweep with other settings ({', '.join(different)} differ: "
            f"{', '.join(f'{k}={settings.get(k)!r}' for k in different)}); give those to "
            "resume or join it, or another study name"
        )
    return study


def _params(trial) -> dict:
    """A trial's parameters, queued (WAITING) or suggested."""
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def queue_grid(study, sweep: Sweep) -> int:
    """Queue each grid point that no trial has finished, taken or queued; how many
    were queued.  A point whose trial failed (interrupted, diverged) is queued again."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    taken = {_key(_params(t)) for t in study.get_trials(deepcopy=False, states=live)}
    queued = 0
    for params in sweep.grid():
        if _key(params) not in taken:
            study.enqueue_trial(params)
            queued += 1
    return queued


def claim(study, storage):
    """The next queued trial, now RUNNING and this worker's, or None when the queue is
    empty.  WAITING -> RUNNING succeeds for one worker only (``Study.ask``'s own step)."""
    optuna = _optuna()
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages import RDBStorage
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    take = _take_row if isinstance(_backend(storage), RDBStorage) else _take
    for waiting in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, waiting.number)
        try:
            if take(storage, trial_id):
                return optuna.Trial(study, trial_id)
        except UpdateFinishedTrialError:
            continue
    return None


def _backend(storage):
    """The storage under Optuna's cache (``get_storage`` wraps an RDBStorage in one)."""
    return getattr(storage, "_backend", storage)


def _take(storage, trial_id: int) -> bool:
    """WAITING -> RUNNING through the storage (journal, in memory: atomic there)."""
    from optuna.trial import TrialState

    return storage.set_trial_state_values(trial_id, TrialState.RUNNING)


def _take_row(storage, trial_id: int) -> bool:
    """WAITING -> RUNNING in one conditional UPDATE, which the database applies to one
    claimant only.  Optuna's own step reads the row, then writes it: on SQLite, which
    ignores ``SELECT ... FOR UPDATE``, two workers both read WAITING and both win."""
    from datetime import datetime, timezone

    from optuna.storages._rdb.models import TrialModel
    from optuna.trial import TrialState

    table = TrialModel.__table__
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # stored as naive UTC
    claim_row = (
        table.update()
        .where(table.c.trial_id == trial_id, table.c.state == TrialState.WAITING)
        .values(state=TrialState.RUNNING, datetime_start=now)
    )
    with _backend(storage).engine.begin() as connection:
        return connection.execute(claim_row).rowcount == 1


def duplicate_of(study, number: int, params: dict) -> int | None:
    """The number of an earlier live trial (finished, running or queued) with the same
    parameters, or None.  Two machines that queue a new study's grid at the same
    moment queue it twice; of each pair, the earlier trial is trained and the later
    one dropped, whichever worker claims which first."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    for other in study.get_trials(deepcopy=False, states=live):
        if other.number < number and _key(_params(other)) == _key(params):
            return other.number
    return None


def results(study) -> list[TrialResult]:
    """Every finished trial of the study, smallest network first."""
    from optuna.trial import TrialState

    done = [TrialResult.from_trial(t) for t in study.get_trials(states=(TrialState.COMPLETE,))]
    return sorted(done, key=lambda r: (r.n_parameters, r.sizes, r.activation, r.lr, r.seed))


def running(study) -> list[dict]:
    """The parameters of the trials being trained now, anywhere."""
    from optuna.trial import TrialState

    return [_params(t) for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def release_stale(study) -> int:
    """Mark failed the RUNNING trials of workers on this machine that are gone (killed
    outright), so that the next run trains them again; how many."""
    from optuna.trial import TrialState

    host, released = socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        where, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if where == host and pid.isdigit() and not _alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL)
            released += 1
    return released


def remaining(study, sweep: Sweep) -> int:
    """How many trials are left for workers to take: queued ones (grid), or those a
    search sampler has still to ask for."""
    from optuna.trial import TrialState

    if sweep.sampler == "grid":
        return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    return max(sweep.size() - len(study.get_trials(deepcopy=False, states=live)), 0)
