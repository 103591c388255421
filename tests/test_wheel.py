"""The package as users get it: ``python -m build`` makes an sdist and, from it, a
wheel, both of which ``twine check`` passes; the wheel installs into a fresh venv
holding nothing else and works there: MNIST inside, train, predict, serve."""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

import digitnet
from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    return out


def test_twine_check_is_clean(dist):
    files = sorted(dist.iterdir())
    assert [f.name for f in files] == [
        f"digitnet-{digitnet.__version__}-py3-none-any.whl",
        f"digitnet-{digitnet.__version__}.tar.gz",
    ]
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2 and "warning" not in checked.stdout.lower()


def test_installs_into_a_fresh_venv_and_works(dist, tmp_path, mnist):
    """The wheel, installed.  (``python -m build`` builds the wheel from the sdist, so
    the sdist holds everything the wheel does: installing it as well, which builds
    that same wheel again, would prove nothing more.)"""
    (artifact,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_ = venv / "bin"
    # nothing of this checkout may reach the venv's Python, however the suite was started
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    installed = subprocess.run(
        [str(bin_ / "pip"), "install", "--quiet", str(artifact)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    work = tmp_path / "work"  # away from the source tree, so only the install is found
    work.mkdir()

    def run(*args, **kwargs):
        return subprocess.run(
            [str(bin_ / "digitnet"), *map(str, args)],
            capture_output=True,
            text=True,
            cwd=work,
            timeout=600,
            env=env,
            **kwargs,
        )

    code = (
        "import digitnet, importlib.metadata as m, json, pathlib; "
        "p = pathlib.Path(digitnet.__file__).parent; "
        "print(json.dumps([str(p), m.version('digitnet'), len(list(p.glob('mnist/*.gz')))]))"
    )
    where = subprocess.run(
        [str(bin_ / "python"), "-c", code], capture_output=True, text=True, env=env
    )
    package, version, mnist_files = json.loads(where.stdout)
    assert Path(package).is_relative_to(venv)
    assert version == digitnet.__version__  # the version is written in one place
    assert mnist_files == 4  # MNIST is inside the package
    assert run("--version").stdout.strip() == f"digitnet {digitnet.__version__}"

    trained = run("train", "--epochs", "1", "--out", "model.safetensors")
    assert trained.returncode == 0, trained.stderr
    assert "test accuracy" in trained.stdout and (work / "model.safetensors").is_file()

    Image.fromarray(mnist.test_images[0].reshape(28, 28)).save(work / "seven.png")
    predicted = run("predict", "model.safetensors", "seven.png", "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["digit"] == int(mnist.test_labels[0]) == 7

    server = subprocess.Popen(
        [str(bin_ / "digitnet"), "serve", "model.safetensors", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=work,
        env={"PYTHONUNBUFFERED": "1", "PATH": str(bin_)},
    )
    try:
        line = server.stdout.readline()
        port = re.search(r"http://\S+:(\d+)/", line)
        assert port, (line, server.stderr.read() if server.poll() is not None else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/api/model") as answer:
            model = json.load(answer)
        assert model["sizes"] == [784, 16, 16, 10] and model["n_parameters"] == 13_002
        assert 0.8 < model["test_accuracy"] < 1
    finally:
        server.terminate()
        server.communicate(timeout=10)
