"""Architecture sweeps on Optuna: workers share one study and never repeat a trial,
Ctrl-C keeps what finished, a second run resumes, bad input is one line."""

import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from conftest import cli
from digitnet.files.modelfile import load
from digitnet.inspect.plots import sweep_figure
from digitnet.learn.network import count_parameters
from digitnet.sweep import (
    JSON_KEYS,
    Sweep,
    TrialResult,
    claim,
    open_storage,
    open_study,
    queue_grid,
    release_stale,
)

TINY = ["784,4,10", "784,6,10", "784,8,10"]


def journal_study(folder, name="digitnet-sweep"):
    storage = JournalStorage(JournalFileBackend(str(folder / "sweep.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def trial_params(study, state=TrialState.COMPLETE):
    return sorted(
        (t.params["sizes"], t.params["activation"], t.params["seed"])
        for t in study.get_trials(states=(state,))
    )


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- the library --------------------------------------------------------------------------


def test_the_grid_is_every_combination():
    sweep = Sweep(((784, 16, 16, 10), (784, 32, 10)), ("sigmoid", "relu"), (0.02, 0.01), seeds=3)
    grid = sweep.grid()
    assert len(grid) == sweep.size() == 2 * 2 * 2 * 3
    assert len({tuple(sorted(p.items())) for p in grid}) == len(grid)
    assert grid[0] == {"sizes": "784-16-16-10", "activation": "sigmoid", "lr": 0.02,
                       "epochs": 10, "seed": 0}  # fmt: skip
    assert sweep.config(grid[-1]).sizes == (784, 32, 10)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"sizes": ()}, "at least one set of layer sizes"),
        ({"activations": ("swish",)}, "unknown activation 'swish'"),
        ({"sampler": "grid", "trials": 5}, "trials is for tpe/random"),
        ({"sampler": "tpe"}, "needs trials >= 1"),
        ({"sampler": "anneal", "trials": 3}, "unknown sampler 'anneal'"),
        ({"seeds": 0}, "seeds must be 1-10000"),
        ({"lrs": (-1.0,)}, "lr must be a positive number"),
    ],
)
def test_bad_sweeps_are_refused(kwargs, message):
    kwargs = {"sizes": ((784, 16, 10),), **kwargs}
    with pytest.raises(ValueError, match=message):
        Sweep(**kwargs)


def test_trial_json_has_exactly_the_contracts_keys():
    result = TrialResult((784, 16, 10), "relu", 12_730, 0.93, 2.5, "/m.safetensors", seed=3)
    assert tuple(result.to_json()) == JSON_KEYS
    assert result.to_json()["sizes"] == [784, 16, 10]


def test_each_queued_trial_is_claimed_once():
    sweep = Sweep(((784, 4, 10), (784, 8, 10)), ("sigmoid", "relu"))
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    assert queue_grid(study, sweep) == 4
    assert queue_grid(study, sweep) == 0  # queued already: not again
    claimed = []
    while (trial := claim(study, storage)) is not None:
        claimed.append(trial.number)
    assert sorted(claimed) == [0, 1, 2, 3]
    study.tell(claimed[0], 0.5)
    for number in claimed[1:]:
        study.tell(number, state=TrialState.FAIL)
    assert queue_grid(study, sweep) == 3  # failed ones go back in the queue, finished do not


def test_racing_workers_on_sqlite_claim_each_trial_once(tmp_path):
    """Four workers, each with its own connection to one SQLite file, claim a queue
    of 24 trials at once: every trial is claimed by exactly one of them."""
    url, sweep = f"sqlite:///{tmp_path / 'race.db'}", Sweep(((784, 4, 10),), seeds=24)
    queue_grid(open_study(open_storage(url, tmp_path), "race", sweep), sweep)
    claimed, start = [], threading.Barrier(4)

    def worker() -> None:
        storage = open_storage(url, tmp_path)
        study = open_study(storage, "race", sweep)
        start.wait()
        while (trial := claim(study, storage)) is not None:
            claimed.append(trial.number)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(24))


def test_a_trial_whose_worker_was_killed_is_trained_again():
    sweep = Sweep(((784, 4, 10),), ("sigmoid", "relu"))
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    queue_grid(study, sweep)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs
    alive, dead = claim(study, storage), claim(study, storage)
    alive.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    dead.set_user_attr("worker", f"{socket.gethostname()}:{gone.pid}")
    assert release_stale(study) == 1
    assert study.trials[dead.number].state == TrialState.FAIL
    assert study.trials[alive.number].state == TrialState.RUNNING
    assert queue_grid(study, sweep) == 1  # the killed worker's trial is queued again


def test_the_plot_shows_each_trial_and_rings_the_videos_network():
    trials = [
        TrialResult((784, 16, 16, 10), "sigmoid", 13_002, 0.96, 20.0, "a.safetensors"),
        TrialResult((784, 32, 10), "relu", 25_450, 0.97, 25.0, "b.safetensors"),
    ]
    by_size, by_time = sweep_figure(trials).axes
    assert by_size.get_xscale() == "log"
    for ax, video, other in ((by_size, 13_002, 25_450), (by_time, 20.0, 25.0)):
        points = sorted(tuple(p) for c in ax.collections for p in c.get_offsets())
        assert points == sorted([(video, 96.0), (video, 96.0), (other, 97.0)])  # a ring too
        assert {t.get_text() for t in ax.texts} == {"16-16", "32"}
    assert [t.get_text() for t in by_size.get_legend().get_texts()] == ["relu", "sigmoid"]


# -- the command ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "runs"
    args = ["sweep", "--sizes", *TINY, "--activation", "sigmoid", "relu", "--epochs", "1"]
    result = cli(*args, "--workers", "2", "--out", out, "--json")
    return args, out, result


def test_two_workers_share_the_study_without_repeating_a_trial(two_workers):
    _, out, result = two_workers
    assert result.returncode == 0, result.stderr
    trials = json_lines(result.stdout)
    assert len(trials) == 6
    assert all(tuple(t) == JSON_KEYS for t in trials)
    assert sorted((tuple(t["sizes"]), t["activation"]) for t in trials) == sorted(
        (tuple(int(n) for n in s.split(",")), a) for s in TINY for a in ("sigmoid", "relu")
    )
    study = journal_study(out)
    assert len(study.trials) == 6  # one trial per grid point, none failed or repeated
    assert len(trial_params(study)) == len(set(trial_params(study))) == 6
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2  # both workers trained
    for t in trials:
        model = load(t["model"])
        assert list(model.network.sizes) == t["sizes"]
        assert model.network.activation_name == t["activation"]
        assert t["n_parameters"] == count_parameters(t["sizes"]) == model.network.n_parameters
        assert model.info["test_accuracy"] == t["test_accuracy"] > 0.1  # better than chance
        assert 0 < t["seconds"] == model.info["train_seconds"]
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "6 of 6 trials finished" in result.stderr


def test_a_second_run_resumes_and_trains_nothing_again(two_workers):
    args, out, first = two_workers
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.safetensors")}
    again = cli(*args, "--workers", "2", "--out", out)
    assert again.returncode == 0, again.stderr
    assert "6 finished already, 0 to train" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.safetensors")} == stamps
    assert len(journal_study(out).trials) == 6
    for t in json_lines(first.stdout):  # the table lists every trial
        assert t["model"] in again.stdout


def test_ctrl_c_keeps_finished_trials_and_a_rerun_trains_the_rest(tmp_path):
    out = tmp_path / "runs"
    args = ["sweep", "--sizes", *TINY, "--epochs", "3", "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "digitnet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    def second_trial_claimed() -> bool:
        """The first trial's model is saved and the next trial has its worker's name
        (the journal records each trial's "worker" as its worker takes it)."""
        journal = out / "sweep.journal"
        return (
            len(list(out.glob("*.safetensors"))) >= 1
            and journal.exists()
            and journal.read_text().count('"worker"') >= 2
        )

    deadline = time.monotonic() + 300
    while not second_trial_claimed():
        assert process.poll() is None and time.monotonic() < deadline, "no second trial"
        time.sleep(0.01)
    # Within a few ms of the second trial's start, with it and a third of 3 epochs each
    # to train: the third cannot have finished, however fast the machine.
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    study = journal_study(out)
    finished = trial_params(study)
    assert 1 <= len(finished) < 3
    assert not study.get_trials(states=(TrialState.RUNNING,))  # nothing left hanging
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*.safetensors")}
    assert len(kept) == len(finished)

    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} finished already, {3 - len(finished)} to train" in again.stdout
    study = journal_study(out)
    assert trial_params(study) == sorted((s.replace(",", "-"), "sigmoid", 0) for s in TINY)
    for name, stamp in kept.items():
        assert (out / name).stat().st_mtime_ns == stamp  # finished trials were not retrained


def running_process(pid: int) -> bool:
    """A process that runs (a zombie, dead but not yet reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def start_long_sweep(out):
    """``digitnet sweep`` with two workers on trials far too long to finish, once both
    workers have claimed a trial; (the process, the workers' process ids)."""
    args = ["sweep", "--sizes", *TINY, "--epochs", "1000", "--workers", "2", "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "digitnet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None and time.monotonic() < deadline, "no two workers"
        journal = out / "sweep.journal"
        if journal.exists() and journal.read_text().count('"worker"') >= 2:
            break
        time.sleep(0.05)
    study = journal_study(out)
    pids = [int(t.user_attrs["worker"].rpartition(":")[2]) for t in study.trials
            if "worker" in t.user_attrs]  # fmt: skip
    return process, pids


def test_workers_end_with_their_sweep_even_when_it_is_killed(tmp_path):
    process, workers = start_long_sweep(tmp_path / "runs")
    assert len(workers) == 2 and all(running_process(pid) for pid in workers)
    process.kill()  # SIGKILL: the sweep cannot tell its workers anything
    process.communicate(timeout=30)
    deadline = time.monotonic() + 90
    while any(running_process(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its sweep"
        time.sleep(0.05)
    study = journal_study(tmp_path / "runs")
    assert not study.get_trials(states=(TrialState.RUNNING,))  # each marked its trial failed


def test_sigterm_stops_the_sweep_non_zero_saying_what_finished(tmp_path):
    process, workers = start_long_sweep(tmp_path / "runs")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "0 of 3 trials finished" in stdout and "Traceback" not in stderr
    assert not any(running_process(pid) for pid in workers)
    study = journal_study(tmp_path / "runs")
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_a_worker_deaf_to_sigint_is_killed_soon_after_its_parent():
    """A worker stuck where SIGINT cannot reach it (here: ignoring it) is killed
    ``grace`` seconds after its parent is gone, instead of living on."""
    worker = (
        "import os, signal, time; from digitnet.sweep.workers import die_with_parent; "
        "signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "die_with_parent(os.getppid(), poll=0.05, grace=0.5); "
        "print(os.getpid(), flush=True); time.sleep(600)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys, time; "
         f"subprocess.Popen([sys.executable, '-c', {worker!r}]); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with parent.stdout:  # the worker holds the pipe too: read its line, then let go
            assert select.select([parent.stdout], [], [], 60)[0], "the worker did not start"
            pid = int(parent.stdout.readline())
        assert running_process(pid)
    finally:
        parent.kill()
        parent.wait(timeout=30)
    deadline = time.monotonic() + 30
    while running_process(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("a worker deaf to SIGINT outlived its parent")
        time.sleep(0.05)


def test_a_worker_stopped_from_outside_ends_the_sweep_non_zero(tmp_path):
    process, workers = start_long_sweep(tmp_path / "runs")
    for pid in workers:
        os.kill(pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted: 2 worker(s) stopped by SIGINT" in stdout
    assert "0 of 3 trials finished" in stdout and "run the same command again" in stdout
    assert "Traceback" not in stderr


def two_machines(url: str, folder: Path, activations: list[str], workers: int) -> None:
    """Two sweeps started at once on one storage, each with its own workers and its own
    folder of models, as two machines would be; checks that together they trained
    each grid point once, and that each reports the whole study."""
    args = ["sweep", "--sizes", *TINY, "--activation", *activations, "--epochs", "1",
            "--storage", url, "--study", "shared", "--workers", str(workers), "--json"]  # fmt: skip
    machines = [
        subprocess.Popen(
            [sys.executable, "-m", "digitnet", *args, "--out", str(folder / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [m.communicate(timeout=300) for m in machines]
    assert [m.returncode for m in machines] == [0, 0], [err for _, err in outputs]
    storage = optuna.storages.RDBStorage(url)
    try:
        study = optuna.load_study(study_name="shared", storage=storage)
        trials = study.trials
    finally:
        storage.engine.dispose()  # its connections closed before the server stops
    for trial in trials:  # a grid queued by both at once: the copies were dropped
        assert trial.state == TrialState.COMPLETE or "duplicate_of" in trial.user_attrs
    grid = sorted((s.replace(",", "-"), a, 0) for s in TINY for a in activations)
    done = [t.params for t in trials if t.state == TrialState.COMPLETE]
    assert sorted((p["sizes"], p["activation"], p["seed"]) for p in done) == grid  # each once
    made = sorted(p.name for name in "ab" for p in (folder / name).glob("*.safetensors"))
    assert len(made) == len(set(made)) == len(grid)  # each model trained on one machine only
    for stdout, _ in outputs:  # both machines report the whole study
        assert len(json_lines(stdout)) == len(grid)


def test_two_machines_join_one_database(tmp_path):
    two_machines(f"sqlite:///{tmp_path / 'sweep.db'}", tmp_path, ["relu"], workers=1)


def postgresql_programs() -> Path | None:
    """The folder of PostgreSQL's initdb and pg_ctl (Debian's ``postgresql`` package
    puts them in /usr/lib/postgresql/VERSION/bin), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@pytest.fixture(scope="module")
def postgresql():
    """A PostgreSQL server of the test's own, in a fresh folder, reached through a unix
    socket there (no TCP port); its SQLAlchemy URL.  PostgreSQL refuses to run as
    root: as root, it runs as the ``postgres`` user that the package creates."""
    programs = postgresql_programs()
    if programs is None:
        pytest.skip("PostgreSQL is not installed (no initdb; Debian: apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="digitnet-postgresql-"))
    as_user = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(program: str, *args) -> None:
        subprocess.run([*as_user, programs / program, *args], check=True, capture_output=True,
                       timeout=120)  # fmt: skip

    data = folder / "data"
    run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
    options = f"-k {folder} -c listen_addresses= -F"  # a socket in the folder; no fsync
    run("pg_ctl", "-D", data, "-l", folder / "log", "-w", "-o", options, "start")
    try:
        yield f"postgresql://postgres@/postgres?host={folder}"
    finally:
        run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # four worker processes and a server: 18-30 s on two busy cores
def test_two_machines_join_one_postgresql_study(postgresql, tmp_path):
    """The README's way past one machine, on a real PostgreSQL server: two sweeps of
    two workers each share one study and train each grid point once."""
    two_machines(postgresql, tmp_path, ["sigmoid", "relu"], workers=2)


def test_a_search_sampler_runs_the_trials_asked_for(tmp_path):
    result = cli(
        "sweep", "--sizes", *TINY, "--activation", "sigmoid", "relu", "--sampler", "random",
        "--trials", "2", "--epochs", "1", "--out", tmp_path, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(json_lines(result.stdout)) == 2
    study = journal_study(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(0 < t.value <= 1 for t in study.trials)  # the validation accuracy


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sizes", "784,x,10"], "expected comma-separated layer sizes"),
        (["--sizes", "100,10"], "MNIST needs 784 inputs"),
        (["--sizes", "784,16,10", "--trials", "3"], "trials is for tpe/random"),
        (["--sizes", "784,16,10", "--sampler", "tpe"], "the tpe sampler needs trials"),
        (["--sizes", "784,16,10", "--storage", "nowhere"], "expected an SQLAlchemy URL"),
        (["--sizes", "784,16,10", "--storage", "nosuchdb://x/y"], "no database kind 'nosuchdb'"),
        (["--sizes", "784,16,10", "--storage", "postgresql+nodriver://x/y"], "no database kind"),
        (["--sizes", "784,16,10", "--storage", "sqlite://"], "an in-memory database"),
        (["--sizes", "784,16,10", "--storage", "sqlite:///"], "an in-memory database"),
        (["--sizes", "784,16,10", "--storage", "sqlite:///:memory:"], "an in-memory database"),
        (["--sizes", "784,16,10", "--activation", "swish"], "invalid choice: 'swish'"),
        (["--sizes", "784,16,10", "--workers", "0"], "expected a positive int"),
        (["--sizes", "784,16,10", "--epochs", "0"], "expected a positive int"),
        (["--sizes", "784,16,10", "--out", "{file}"], "exists and is not a folder"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    (tmp_path / "file").write_text("x")
    args = [a.format(file=tmp_path / "file") for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "runs")]
    result = cli("sweep", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.safetensors"))


def test_another_sweep_in_the_same_study_is_refused(two_workers):
    _, out, _ = two_workers
    result = cli("sweep", "--sizes", "784,16,10", "--out", out)
    assert result.returncode == 2
    assert "is a sweep with other settings (sizes, activations, epochs differ" in result.stderr
    assert len(journal_study(out).trials) == 6
