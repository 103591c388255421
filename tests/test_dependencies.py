"""The package's layers, and the compiled loop's cache key.

Dependencies point down: the math the compiled loop is built from (``learn/``)
imports nothing of the rest; training imports the math; files, vision and inspect
import the network; the services, the server and the CLI sit on top, and nothing
below imports them.  The compiled loop's cache key is computed from the files of
every function the loop runs, found by following its calls, so a function that
moves out of ``learn/`` is still covered, and such a move is caught here."""

import ast
import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path

import pytest

import digitnet
from digitnet.config import TrainConfig
from digitnet.learn import kernel
from digitnet.learn.activations import ACTIVATIONS, LOSSES
from digitnet.learn.loop import train_batches
from digitnet.learn.optimizers import OPTIMIZERS
from digitnet.train import math_of

PACKAGE = Path(digitnet.__file__).parent

#: Each part of the package (its first name under ``digitnet``), lowest layer first.
LAYERS = [
    {"learn"},
    {"limits", "settings", "config"},
    {"train"},
    {"files"},
    {"vision", "inspect"},
    {"service", "sweep", "notebook", "recipes"},
    {"server", "cli", "__main__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported_parts(path: Path) -> set[str]:
    """The parts of digitnet that a module imports, at its top or inside a function."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = [*base, *(node.module or "").split(".")] if node.module else base
            else:
                target = (node.module or "").split(".")
            names = [target] if len(target) > 1 else [[*target, a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        parts |= {n[1] for n in names if n[0] == "digitnet" and len(n) > 1}
    return parts


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_module_has_a_layer():
    assert {part_of(p) for p in MODULES} <= set(RANK), "a new part of the package: give it a layer"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_dependencies_point_down(path):
    own = RANK[part_of(path)]
    upward = sorted(p for p in imported_parts(path) - {"__version__"} if RANK.get(p, -1) > own)
    assert not upward, f"{path.relative_to(PACKAGE)} (layer {own}) imports {upward} from above"


def combinations():
    for activation, (loss, output), optimizer in itertools.product(
        ACTIVATIONS, LOSSES, OPTIMIZERS
    ):
        yield TrainConfig(activation=activation, output=output, loss=loss, optimizer=optimizer)


def test_everything_the_loop_runs_is_in_learn_and_in_its_cache_key():
    learn = PACKAGE / "learn"
    for config in combinations():
        functions = (train_batches, *math_of(config))
        covered = set(kernel.source_files(functions))
        for function in kernel.reachable(functions):
            where = Path(function.__code__.co_filename).resolve()
            assert where.parent == learn.resolve(), f"{function.__qualname__} is in {where}"
            assert where in covered


def test_the_cache_key_follows_the_calls_into_any_file(tmp_path, monkeypatch):
    """A function the loop calls, in a module of its own, is part of the key: editing
    that module alone makes a new key."""
    (tmp_path / "helper_math.py").write_text("def helper(z):\n    return z + 1\n")
    (tmp_path / "outer_math.py").write_text(
        "from helper_math import helper\n\ndef f(z):\n    return helper(z) * 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = importlib.util.spec_from_file_location("outer_math", tmp_path / "outer_math.py")
    outer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(outer)
    assert (tmp_path / "helper_math.py").resolve() in kernel.source_files((outer.f,))
    before = kernel.fingerprint((outer.f,))
    (tmp_path / "helper_math.py").write_text("def helper(z):\n    return z + 2\n")
    kernel.fingerprint.cache_clear()
    assert kernel.fingerprint((outer.f,)) != before


def test_a_training_worker_imports_no_web_framework():
    """``python -m digitnet.server.worker`` starts at each run: it imports what trains,
    not FastAPI and uvicorn (half a second of CPU a run when it did), while every name
    ``digitnet.server`` offers is still there."""
    probe = (
        "import sys, digitnet.server.worker, digitnet.server as s; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules)); "
        "print(all(getattr(s, n) is not None for n in s.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
