"""The command line, run as a user runs it: a real process, real files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from digitnet.files.modelfile import load


def run(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "digitnet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        **kwargs,
    )


@pytest.fixture(scope="module")
def default_model(tmp_path_factory, default_loop):
    """`digitnet train` with every default, seeded: the run the README promises, on the
    loop "auto" takes once the compiled loop is built (``default_loop``)."""
    path = tmp_path_factory.mktemp("default") / "model.safetensors"
    result = run("train", "--seed", "0", "--out", path)
    assert result.returncode == 0, result.stderr
    return path, result


def test_default_training_reaches_96_percent(default_model, default_loop):
    path, result = default_model
    info = load(path).info
    assert info["kernel"] == default_loop
    assert info["test_accuracy"] >= 0.96, result.stdout
    assert info["config"]["sizes"] == [784, 16, 16, 10]
    assert info["config"]["activation"] == "sigmoid"
    assert "test accuracy" in result.stdout
    epoch_lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == info["config"]["epochs"] == len(info["history"]["epochs"])
    assert "val" in epoch_lines[0] and "loss" in epoch_lines[0]


def independent_accuracy(path, images, labels):
    """Recompute the test accuracy from the raw tensors with nothing but NumPy."""
    tensors = load_file(path)
    a = images.astype(np.float64) / 255
    n_layers = len(tensors) // 2
    for i in range(n_layers):
        z = a @ tensors[f"layers.{i}.weight"].T.astype(np.float64) + tensors[f"layers.{i}.bias"]
        a = 1 / (1 + np.exp(-z)) if i < n_layers - 1 else z  # sigmoid, then logits
    return float(np.mean(a.argmax(axis=1) == labels))


def test_evaluate_json_agrees_with_independent_recomputation(default_model, mnist):
    path, _ = default_model
    result = run("evaluate", path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = independent_accuracy(path, mnist.test_images, mnist.test_labels)
    assert report["accuracy"] == pytest.approx(expected, abs=1e-4)
    assert report["accuracy"] == pytest.approx(load(path).test_accuracy)
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 10_000
    assert np.trace(confusion) == round(report["accuracy"] * 10_000)
    assert np.allclose(report["per_digit"], np.diag(confusion) / confusion.sum(axis=1))


def test_evaluate_and_info_text(default_model):
    path, _ = default_model
    text = run("evaluate", path)
    assert text.returncode == 0 and "confusion matrix" in text.stdout
    info = run("info", path)
    assert info.returncode == 0
    assert "784-16-16-10" in info.stdout and "13,002" in info.stdout
    assert "test accuracy" in info.stdout
    as_json = json.loads(run("info", path, "--json").stdout)
    assert as_json["n_parameters"] == 13_002


def test_classic_recipe_is_one_set_of_flags_away(tmp_path):
    """Nielsen's network.py recipe: quadratic cost, sigmoid output, SGD η=3, batch 10."""
    path = tmp_path / "classic.safetensors"
    result = run(
        "train",
        "--kernel",
        "numpy",
        "--loss",
        "quadratic",
        "--output",
        "sigmoid",
        "--optimizer",
        "sgd",
        "--lr",
        "3",
        "--batch-size",
        "10",
        "--schedule",
        "constant",
        "--weight-decay",
        "0",
        "--epochs",
        "1",
        "--out",
        path,
    )
    assert result.returncode == 0, result.stderr
    info = load(path).info
    assert (info["loss"], info["output"]) == ("quadratic", "sigmoid")
    assert info["config"]["optimizer"] == "sgd" and info["config"]["lr"] == 3
    assert info["test_accuracy"] > 0.85  # one epoch of the classic recipe


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--sizes", "784,x,10"], "comma-separated"),
        (["train", "--activation", "swish"], "invalid choice"),
        (["train", "--lr", "0"], "positive"),
        (["train", "--epochs", "1.5"], "positive int"),
        (["train", "--sizes", "100,10"], "images have 784 pixels"),
        (["train", "--sizes", "784,5"], "5 outputs for 10 classes"),
        (["train", "--out", "/nonexistent/dir/m.safetensors"], "does not exist"),
        (["train", "--resume", "x.ckpt", "--epochs", "3"], "cannot change them"),
        (["train", "--data", "/nonexistent"], "not a directory"),
        (["train", "--validation", "60000"], "leaves no training images"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\x00" * 64])
def test_bad_model_files_exit_2(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    for command in ("evaluate", "info"):
        result = run(command, path)
        assert result.returncode == 2
        assert f"{path}: not a valid safetensors file" in result.stderr
        assert "Traceback" not in result.stderr


def test_missing_model_file_exits_2(tmp_path):
    result = run("evaluate", tmp_path / "missing.safetensors")
    assert result.returncode == 2 and "cannot open" in result.stderr


def test_divergence_exits_1_without_a_model(tmp_path):
    path = tmp_path / "m.safetensors"
    result = run(
        "train",
        "--kernel",
        "numpy",
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--activation",
        "relu",
        "--loss",
        "quadratic",
        "--epochs",
        "1",
        "--out",
        path,
    )
    assert result.returncode == 1
    assert "learning rate" in result.stderr and "Traceback" not in result.stderr
    assert not path.exists()


def test_divergence_names_the_setting_that_caused_it(tmp_path):
    """An enormous weight decay diverges the run: the error blames it, not the
    learning rate."""
    path = tmp_path / "m.safetensors"
    result = run("train", "--kernel", "numpy", "--weight-decay", "3.4e38", "--epochs", "1",
                 "--sizes", "784,4,10", "--validation", "0", "--out", path)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "weight decay 3.4e+38 is probably too large" in result.stderr
    assert "--weight-decay 0.0001" in result.stderr and "--lr" not in result.stderr
    assert not path.exists()


def test_ctrl_c_keeps_the_best_model_so_far(tmp_path):
    path = tmp_path / "m.safetensors"
    process = start_training("--epochs", "200", "--kernel", "numpy", "--out", path)
    for line in process.stdout:  # two epochs have finished; 198 cannot have
        if line.split()[:2] == ["epoch", "2/200"]:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "kept the best model so far" in err and "Traceback" not in err
    model = load(path)
    history = model.info["history"]
    assert history["stopped"] == "interrupted"
    assert 2 <= len(history["epochs"]) < 200
    assert model.test_accuracy > 0.8
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


def test_python_warnings_are_one_line_like_every_other_message(tmp_path):
    """A float TIFF holding inf makes NumPy warn while the picture is scaled: the
    warning is one line in the commands' style, not a stray traceback-like pair."""
    from PIL import Image

    from digitnet.files.modelfile import save
    from digitnet.learn.network import Network

    save(tmp_path / "m.safetensors", Network((784, 8, 10)), {})
    ink = np.zeros((28, 28), np.float32)
    ink[3, 3], ink[10:20, 12:15] = np.inf, 1.0
    Image.fromarray(ink).save(tmp_path / "inf.tiff")
    result = run("predict", tmp_path / "m.safetensors", tmp_path / "inf.tiff")
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("warning: ") and "(RuntimeWarning)" in line for line in lines)
    for line in lines:
        assert line.startswith(("warning: ", "digitnet predict: ")), result.stderr
        assert ".py" not in line


def test_serve_skips_links_in_its_models_folder_and_explores_any_width(tmp_path):
    """``serve --models DIR`` with a dangling link and a link loop in DIR starts, says
    what it skipped in one line each, and explores a 100-input model found there."""
    import urllib.request

    from conftest import start_server, stop
    from digitnet.files.modelfile import save
    from digitnet.learn.network import Network

    folder = tmp_path / "models"
    folder.mkdir()
    save(tmp_path / "served.safetensors", Network((784, 8, 10)), {})
    save(folder / "wide.safetensors", Network((100, 8, 10)), {})
    (folder / "dangling.safetensors").symlink_to(folder / "gone.safetensors")
    (folder / "loop.safetensors").symlink_to(folder / "loop.safetensors")
    process, port, _ = start_server(tmp_path / "served.safetensors", "--models", folder)
    try:
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/api/models", timeout=60) as answer:
            assert [m["id"] for m in json.load(answer)] == ["served", "wide"]
        for layer in (1, 2):
            url = f"{base}/api/neuron?layer={layer}&index=0&model=wide"
            with urllib.request.urlopen(url, timeout=120) as answer:
                assert len(json.load(answer)["wants"]) == 100
    finally:
        stderr = stop(process)
    for name in ("dangling", "loop"):
        assert f"warning: not offered: {folder / name}.safetensors: is a symbolic link" in stderr
    assert "Traceback" not in stderr


def test_python_dash_m_and_console_script_agree():
    """The `digitnet` script pip installed beside this Python, and `python -m digitnet`."""
    script = Path(sys.executable).parent / "digitnet"
    assert script.is_file(), f"no console script at {script}: is the package installed?"
    for command in (["--version"], ["train", "--lr", "0"], ["info", "/nonexistent.safetensors"]):
        by_script = subprocess.run(
            [str(script), *command], capture_output=True, text=True, timeout=120
        )
        by_module = run(*command)
        assert by_script.returncode == by_module.returncode
        assert by_script.stdout == by_module.stdout and by_script.stderr == by_module.stderr
    assert run("--version").stdout.startswith("digitnet ")


def start_training(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "digitnet", "train", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


#: A seeded run on 900 of the small set's images, long enough (30 epochs) that the
#: epochs after a kill cannot finish before the kill lands, on any machine.
SMALL_RUN = ("--validation", "100", "--kernel", "numpy", "--epochs", "30", "--seed", "5")


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory, small_mnist):
    """The small run, with nothing interrupting it, to compare resumed runs with."""
    path = tmp_path_factory.mktemp("unbroken") / "m.safetensors"
    result = run("train", "--data", small_mnist, *SMALL_RUN, "--out", path)
    assert result.returncode == 0, result.stderr
    return load(path)


def kill_then_resume(folder: Path, data: Path, sig: int, *settings: str):
    """The small run with ``settings``, killed by ``sig`` after its third epoch's
    checkpoint, then resumed from that checkpoint to its end: the model."""
    out, ckpt = folder / "m.safetensors", folder / "run.ckpt"
    process = start_training(
        "--data", data, *SMALL_RUN, *settings, "--out", out, "--checkpoint-every", "1",
        "--checkpoint", ckpt,
    )  # fmt: skip
    for line in process.stdout:  # epoch 3's checkpoint is written before its line
        if line.split()[:2] == ["epoch", "3/30"]:
            break
    process.send_signal(sig)
    process.communicate(timeout=120)
    assert process.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    # whatever moment the kill came, the last checkpoint is whole and loadable
    from digitnet.files.checkpoint import load_checkpoint

    state, config = load_checkpoint(ckpt)
    assert 3 <= state.epoch < 30 and config.epochs == 30
    resumed = run("train", "--resume", ckpt, "--data", data, "--out", out)
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch {state.epoch} of 30" in resumed.stdout
    return load(out)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_kill_then_resume_reaches_the_same_model(tmp_path, small_mnist, unbroken, sig):
    model = kill_then_resume(tmp_path, small_mnist, sig)
    assert model.network.params.tobytes() == unbroken.network.params.tobytes()
    assert model.test_accuracy == unbroken.test_accuracy


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
def test_sgd_and_momentum_checkpoint_and_resume_bit_for_bit_like_adam(
    tmp_path, small_mnist, optimizer
):
    """Their state (none for SGD, the velocity for momentum) goes into the checkpoint
    and comes back, so a resumed run ends on the very weights of an unbroken one."""
    whole = tmp_path / "whole.safetensors"
    result = run("train", "--data", small_mnist, *SMALL_RUN, "--optimizer", optimizer,
                 "--out", whole)  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = kill_then_resume(tmp_path, small_mnist, signal.SIGINT, "--optimizer", optimizer)
    assert model.info["config"]["optimizer"] == optimizer
    assert model.network.params.tobytes() == load(whole).network.params.tobytes()


def test_resume_from_a_bad_checkpoint_exits_2(tmp_path, unbroken):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00" * 100)
    result = run("train", "--resume", bad)
    assert result.returncode == 2 and "not a valid safetensors file" in result.stderr
    model_not_checkpoint = tmp_path / "m.safetensors"
    from digitnet.files.modelfile import save

    save(model_not_checkpoint, unbroken.network, {})
    result = run("train", "--resume", model_not_checkpoint)
    assert result.returncode == 2 and "not a digitnet checkpoint" in result.stderr


def frozen_mid_save(process: subprocess.Popen, path: Path, deadline: float) -> bool:
    """Stop ``process`` (SIGSTOP) at a moment when it is writing ``path``: when the
    temporary file of an atomic save of it exists.  False if the process ended or the
    deadline passed first."""
    pattern = f".{path.name}.*.tmp"
    while process.poll() is None and time.monotonic() < deadline:
        if any(path.parent.glob(pattern)):
            process.send_signal(signal.SIGSTOP)
            if any(path.parent.glob(pattern)):  # still there, and now it stays
                return True
            process.send_signal(signal.SIGCONT)  # the save ended in between: go on
    return False


@pytest.mark.parametrize("moment", ["after the first checkpoint", "while a checkpoint is written"])
def test_sigkill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path, small_mnist, moment):
    """SIGKILL once the first checkpoint exists, or in the middle of writing one (the
    process frozen while the temporary file exists): the checkpoint on disk is always
    whole, no model is half-written, and the next save of the checkpoint removes the
    temporary file a killed save left.  A layer of 1,000 neurons makes a 13 MB
    checkpoint, whose writing takes long enough to be caught in the act."""
    from digitnet.files.checkpoint import load_checkpoint

    ckpt, out = tmp_path / "run.ckpt", tmp_path / "m.safetensors"
    process = start_training(
        "--data", small_mnist, "--validation", "100", "--kernel", "numpy", "--epochs", "8",
        "--sizes", "784,1000,10", "--out", out, "--checkpoint-every", "1", "--checkpoint", ckpt,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while not ckpt.exists():
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.005)
        if moment == "while a checkpoint is written":  # a later one, over the first
            assert frozen_mid_save(process, ckpt, deadline), "never caught writing one"
    finally:
        process.kill()  # (a frozen process is killed as it is)
        _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, err
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    if moment == "while a checkpoint is written":
        assert len(left) == 1  # the killed save's
    state, config = load_checkpoint(ckpt)  # whole, whichever epoch it holds
    assert 1 <= state.epoch <= 8 and config.epochs == 8
    assert not out.exists()  # killed before the end: no model, and no half of one
    resumed = run("train", "--resume", ckpt, "--data", small_mnist, "--out", out,
                  "--checkpoint-every", "1", "--checkpoint", ckpt)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert len(load(out).info["history"]["epochs"]) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "run.ckpt"]
