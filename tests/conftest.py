"""Shared fixtures: the MNIST copy that ships with the package, loaded once; one
compile cache for the whole run; a fresh fuzzing seed each run, printed."""

import gzip
import os
import random
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# numba's compile cache for this run, shared by every test and every process the tests
# start (they inherit the environment): each configuration of the compiled loop is
# compiled once per run, and nothing depends on what an earlier run left in
# ~/.cache/numba or beside the source.  Set before numba is imported anywhere.
# ``test_kernel.py::test_auto_takes_the_compiled_loop_only_once_it_is_built`` is the
# one test that compiles from an empty cache of its own.
NUMBA_CACHE = tempfile.mkdtemp(prefix="digitnet-test-numba-")
os.environ["NUMBA_CACHE_DIR"] = NUMBA_CACHE
# ... compiled with LLVM's -O2 rather than numba's default -O3: well under half the
# compile time, for code as fast here, and the same IEEE arithmetic (neither level may
# reorder float operations without fast-math, which digitnet never asks for), so the
# same results to the bit; the cold-compile test checks that against -O3.
NUMBA_OPT = os.environ.setdefault("NUMBA_OPT", "2")
# ``kernel="auto"`` starts no background compile in the tests (a dozen configurations,
# minutes of CPU each, would share the two cores with every test); the one test of that
# build turns it back on for its own script.
os.environ["DIGITNET_BACKGROUND_BUILD"] = "0"

from digitnet.files.data import load_mnist  # noqa: E402  (after NUMBA_CACHE_DIR is set)
from digitnet.files.modelfile import save  # noqa: E402
from digitnet.train import TrainConfig, evaluate, train_network  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Give hypothesis a fresh seed each run unless ``--hypothesis-seed`` names one, so
    the fuzzers try new inputs every time and a failure is replayed from the seed."""
    if config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = random.SystemRandom().randrange(2**32)


def pytest_report_header(config):
    seed = config.getoption("hypothesis_seed", None)
    return [
        f"hypothesis seed: {seed} (to replay a run's inputs: --hypothesis-seed={seed})",
        f"numba compile cache for this run: {NUMBA_CACHE} (NUMBA_OPT={NUMBA_OPT})",
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test of a module that uses hypothesis says the run's seed."""
    outcome = yield
    report = outcome.get_result()
    names = vars(getattr(item, "module", None) or object()).values()
    uses_hypothesis = any(str(getattr(v, "__module__", "")).startswith("hypothesis") for v in names)
    if report.failed and uses_hypothesis:
        seed = item.config.getoption("hypothesis_seed", None)
        report.sections.append(
            ("hypothesis seed", f"this run's seed: {seed}; replay with --hypothesis-seed={seed}")
        )


def pytest_unconfigure(config):
    shutil.rmtree(NUMBA_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def mnist():
    return load_mnist()


@pytest.fixture(scope="session")
def default_loop() -> str:
    """The loop ``kernel="auto"`` takes for the default configuration in this run:
    "compiled" where numba is installed (its loop is built here, once, into this run's
    compile cache, so every process of the run finds it), else "numpy"."""
    from digitnet.learn import kernel
    from digitnet.train import compile_loop

    if not kernel.AVAILABLE:
        return "numpy"
    compile_loop(TrainConfig())
    return "compiled"


@pytest.fixture(scope="session")
def trained(mnist, tmp_path_factory):
    """A default network trained for 10 epochs (about 95.5% on the test set), saved.
    Without distorted twins (``distort=0``): the floors the tests hold it to were
    measured on this model, and twins move a 10-epoch model's reading of single
    drawings (the 40-epoch default's effect is in benchmarks/results/hands.md)."""
    config = TrainConfig(epochs=10, distort=0, kernel="numpy")  # the same model on any loop
    net, history = train_network(mnist.train_images, mnist.train_labels, config)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    accuracy = evaluate(net, mnist.test_images, mnist.test_labels).accuracy
    save(path, net, {"history": history.to_dict(), "test_accuracy": accuracy})
    return net, path


def write_idx(path: Path, array: np.ndarray) -> None:
    """An array of uint8 as a gzip'd IDX file (MNIST's format)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


@pytest.fixture(scope="session")
def small_mnist(mnist, tmp_path_factory) -> Path:
    """A folder in MNIST's four-file form holding its first 1,000 training and 300
    test images: for runs that only need to be real, not good (``--data``)."""
    folder = tmp_path_factory.mktemp("small-mnist")
    write_idx(folder / "train-images-idx3-ubyte.gz", mnist.train_images[:1000].reshape(-1, 28, 28))
    write_idx(folder / "train-labels-idx1-ubyte.gz", mnist.train_labels[:1000])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", mnist.test_images[:300].reshape(-1, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", mnist.test_labels[:300])
    return folder


def cli(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m digitnet ARGS`` as a user would; its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "digitnet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_server(model, *extra) -> tuple[subprocess.Popen, int, str]:
    """``digitnet serve MODEL --port 0``, for real: the process, its port, the line it
    printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digitnet", "serve", str(model), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = process.stdout.readline()
    match = re.search(r"http://\S+:(\d+)/", line)
    assert match, (line, process.stderr.read() if process.poll() is not None else "")
    return process, int(match.group(1)), line


def stop(process: subprocess.Popen) -> str:
    """Stop a server started above; what it wrote to stderr.  It stops within
    ``server.SHUTDOWN_TIMEOUT`` seconds of its own clock; the 30 allow for a machine
    busy with other work."""
    process.terminate()
    return process.communicate(timeout=30)[1]


def special_files(folder: Path, suffix: str = "") -> tuple[dict, socket.socket]:
    """A FIFO, a Unix socket, a folder and (where the system lets us) a copy of the
    /dev/null device node, each made here so that nothing outside the test is at risk,
    named with ``suffix``; and the socket, for the caller to close."""
    made = {}
    os.mkfifo(folder / f"fifo{suffix}")
    made["a FIFO"] = folder / f"fifo{suffix}"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / f"sock{suffix}"))
    made["a socket"] = folder / f"sock{suffix}"
    (folder / f"dir{suffix}").mkdir()
    made["a directory"] = folder / f"dir{suffix}"
    try:
        os.mknod(folder / f"null{suffix}", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made["a character device"] = folder / f"null{suffix}"
    except PermissionError:
        pass
    return made, sock


# The browser tests' page and Chromium (tests/browser/pagetools.py), one of each per
# test module.  pagetools is importable once a module of tests/browser is collected.


@pytest.fixture(scope="module")
def server(trained):
    """The page, served from the shared model: its address."""
    from pagetools import serving

    yield from serving(trained[1])


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, driven by Playwright."""
    from pagetools import chromium

    yield from chromium()


@pytest.fixture(scope="module")
def client(trained, mnist):
    """The API of the shared model, in process, with all 10,000 test digits as samples."""
    from fastapi.testclient import TestClient

    from digitnet.files.modelfile import load
    from digitnet.server import create_app

    app = create_app(load(trained[1]), samples=(mnist.test_images, mnist.test_labels))
    with TestClient(app) as client:
        yield client
