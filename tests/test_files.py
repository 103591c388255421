"""Output paths checked before work, atomic writes, stale temporary files, and inputs
that are not regular files: ``digitnet.files.paths`` on real files, FIFOs and sockets."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import special_files
from digitnet.files.modelfile import load, save
from digitnet.files.paths import (
    InputError,
    OutputError,
    atomic_write,
    check_output,
    open_regular,
    regular_files,
    remove_stale_temporaries,
    require_regular,
    stale_temporaries,
    temp_path,
)
from digitnet.learn.network import Network


def test_outputs_that_are_not_regular_files_are_refused_untouched(tmp_path):
    made, sock = special_files(tmp_path)
    try:
        for kind, path in made.items():
            before = os.lstat(path)
            with pytest.raises(OutputError, match=f"exists and is {kind}, not a regular file"):
                check_output(path, what="--out")
            with pytest.raises(OutputError, match=f"is {kind}"):
                atomic_write(path, b"data")
            after = os.lstat(path)
            assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    finally:
        sock.close()


def test_an_input_of_the_same_command_is_never_an_output(tmp_path):
    picture = tmp_path / "seven.png"
    picture.write_bytes(b"picture")
    (tmp_path / "link.png").symlink_to(picture)
    os.link(picture, tmp_path / "hard.png")
    for output in (
        picture,
        tmp_path / "link.png",
        tmp_path / "hard.png",
        tmp_path / "." / "seven.png",
    ):
        with pytest.raises(OutputError, match="which this command reads"):
            check_output(output, inputs=[picture])
    assert check_output(tmp_path / "other.png", inputs=[picture]) == tmp_path / "other.png"
    assert picture.read_bytes() == b"picture"


def test_folders_that_cannot_take_the_file(tmp_path):
    with pytest.raises(OutputError, match="folder .* does not exist"):
        check_output(tmp_path / "missing" / "m.safetensors")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match="is not a folder"):
        check_output(tmp_path / "file" / "m.safetensors")
    with pytest.raises(OutputError, match="cannot write in /proc"):
        check_output("/proc/m.safetensors")
    with pytest.raises(OutputError, match=r"needs about [\d,]+ bytes but .* free"):
        check_output(tmp_path / "m.safetensors", size=10**18)
    assert not list(tmp_path.glob(".*.tmp"))  # the probes left nothing


def test_a_long_legal_name_saves_and_a_too_long_one_is_refused_first(tmp_path):
    name = "a" * 240 + ".safetensors"  # 252 bytes: legal, but .NAME.tmp would not be
    assert len(name.encode()) == 252
    check_output(tmp_path / name)
    atomic_write(tmp_path / name, b"model")
    assert (tmp_path / name).read_bytes() == b"model"
    assert len(temp_path(tmp_path / name).name.encode()) <= 255
    with pytest.raises(OutputError, match="the name is 256 bytes, more than the 255"):
        check_output(tmp_path / ("b" * 256))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporaries_of_our_naming_are_removed_on_the_next_save(tmp_path):
    path = tmp_path / "m.safetensors"
    dead = tmp_path / f".m.safetensors.{dead_pid()}.0123abcd.tmp"
    alive = tmp_path / f".m.safetensors.{os.getppid()}.89abcdef.tmp"  # a running process
    old_style = tmp_path / ".m.safetensors.k2j4_x9q.tmp"
    fresh_old_style = tmp_path / ".m.safetensors.abcdefgh.tmp"
    other = tmp_path / ".other.safetensors.1.0123abcd.tmp"
    mine = tmp_path / "notes.tmp"
    for p in (dead, alive, old_style, fresh_old_style, other, mine):
        p.write_bytes(b"x" * 100)
    two_hours_ago = time.time() - 7200
    os.utime(old_style, (two_hours_ago, two_hours_ago))
    assert sorted(stale_temporaries(path)) == sorted([dead, old_style])
    atomic_write(path, b"new")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"m.safetensors", alive.name, fresh_old_style.name, other.name, "notes.tmp"}
    assert remove_stale_temporaries(path) == 0


def test_a_write_that_fails_for_want_of_space_is_one_error_and_leaves_nothing(tmp_path):
    """A real EFBIG from the kernel (a file-size limit, as a full quota would): the old
    file stays whole, no temporary file is left, and the error names the path."""
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old model")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from digitnet.files.paths import atomic_write, OutputError\n"
        "try:\n"
        f"    atomic_write({str(path)!r}, b'x' * 100_000)\n"
        "except OutputError as e:\n"
        "    print(e)\n"
        "    sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert f"{path}: cannot write (File too large" in result.stdout
    assert path.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_inputs_must_be_regular_files_and_are_never_opened_otherwise(tmp_path):
    made, sock = special_files(tmp_path)
    try:
        for kind, path in made.items():
            with pytest.raises(InputError, match=f"is {kind}, expected a model"):
                require_regular(path, expected="a model")
            with pytest.raises(InputError, match=f"is {kind}"):
                open_regular(path)  # a FIFO without a writer: refused, not waited on
        with pytest.raises(InputError, match="cannot open"):
            require_regular(tmp_path / "missing")
    finally:
        sock.close()
    (tmp_path / "f").write_bytes(b"abc")
    with open_regular(tmp_path / "f") as f:
        assert f.read() == b"abc"


def a_model(path, sizes=(784, 8, 10)):
    net = Network(sizes, "relu", rng=np.random.default_rng(0))
    save(path, net, {})
    return net


def test_a_models_folder_skips_links_and_unreadable_files_with_a_reason(tmp_path):
    """Symbolic links (dangling, looping, or to a model) are skipped, not followed or
    crashed on; files that do not load take no place from the models that do."""
    from digitnet.server.models import MAX_MODELS, Models

    a_model(tmp_path / "real.safetensors")
    old = time.time() - 3600
    os.utime(tmp_path / "real.safetensors", (old, old))  # older than every bad file
    (tmp_path / "dangling.safetensors").symlink_to(tmp_path / "nothing")
    (tmp_path / "loop.safetensors").symlink_to(tmp_path / "loop.safetensors")
    (tmp_path / "link.safetensors").symlink_to(tmp_path / "real.safetensors")
    for n in range(MAX_MODELS):
        (tmp_path / f"junk-{n}.safetensors").write_bytes(b"not a model")
    files, skipped = regular_files(tmp_path, "*.safetensors")
    assert files[-1] == tmp_path / "real.safetensors" and len(files) == MAX_MODELS + 1
    assert skipped == [f"{tmp_path / name}.safetensors: is a symbolic link, not followed"
                       for name in ("dangling", "link", "loop")]  # fmt: skip
    models = Models(load(tmp_path / "real.safetensors"), tmp_path)
    assert models.ids() == ["served", "real"]
    assert len(models.skipped) == 3 + MAX_MODELS


@pytest.mark.parametrize("sizes", [(100, 16, 10), (784, 32, 10)])
def test_a_valid_model_of_any_input_width_is_served_and_explored(sizes, tmp_path, mnist):
    from fastapi.testclient import TestClient

    from digitnet.server import create_app

    net = a_model(tmp_path / "m.safetensors", sizes)
    app = create_app(load(tmp_path / "m.safetensors"), (mnist.test_images, mnist.test_labels))
    with TestClient(app) as client:
        assert client.get("/api/model").json()["sizes"] == list(sizes)
        for layer in (1, 2):
            answer = client.get(f"/api/neuron?layer={layer}&index=3")
            assert answer.status_code == 200, answer.text
            neuron = answer.json()
            assert neuron["weights"] == pytest.approx(net.W[layer - 1][3], abs=1e-5)
            assert len(neuron["wants"]) == sizes[0]
            # the test digits are its inputs only at 784 wide: then it has top images
            assert bool(neuron["top"]) == (sizes[0] == 784)
            assert ("knockout" in neuron) == (sizes[0] == 784 and layer == 1)
