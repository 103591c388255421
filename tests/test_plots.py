"""Pictures: each kind written as a real, non-blank image; bad arguments exit 2."""

import io
from pathlib import Path

import nbformat
import numpy as np
import pytest
from matplotlib.figure import Figure
from nbclient import NotebookClient
from PIL import Image

from conftest import cli
from digitnet.config import History
from digitnet.files.modelfile import load
from digitnet.inspect import plots

KINDS = ["network", "weights", "curves", "confusion", "mistakes", "noise"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def assert_picture(path: Path, min_size=(500, 300)):
    data = path.read_bytes()
    if path.suffix == ".svg":
        assert b"<svg" in data[:2000] and len(data) > 10_000
        return
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=float)
    assert image.shape[1] >= min_size[0] and image.shape[0] >= min_size[1]
    assert image.std() > 10  # not blank
    assert len(np.unique(image)) > 20


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_writes_a_picture(trained, tmp_path, kind):
    _, model = trained
    out = tmp_path / f"{kind}.png"
    result = cli("plot", kind, model, "--out", out)
    assert result.returncode == 0, result.stderr
    assert_picture(out)


def test_svg_and_a_picture_file(trained, tmp_path, mnist):
    _, model = trained
    digit = tmp_path / "digit.png"
    Image.fromarray(255 - mnist.test_images[1].reshape(28, 28)).resize((200, 200)).save(digit)
    out = tmp_path / "network.svg"
    result = cli("plot", "network", model, "--image", digit, "--out", out)
    assert result.returncode == 0, result.stderr
    assert_picture(out)


def test_functions_take_the_librarys_objects(trained, mnist):
    net, path = trained
    history = History.from_dict(load(path).info["history"])
    figures = [
        plots.network_figure(net, mnist.test_images[0] / 255, label=7),
        plots.weights_figure(net),
        plots.curves_figure(history),
        plots.confusion_figure(np.eye(10, dtype=int) * 100),
        plots.mistakes_figure(net, mnist.test_images[:2000], mnist.test_labels[:2000], count=8),
        plots.noise_figure(net, np.random.default_rng(1), count=3),
    ]
    for figure in figures:
        assert isinstance(figure, Figure) and figure.axes
    assert len(figures[1].axes) >= 16  # one picture per first-layer neuron
    with pytest.raises(ValueError, match="no epochs"):
        plots.curves_figure(History())


@pytest.mark.parametrize(
    "args, message",
    [
        (["plot", "sunset", "{model}", "--out", "{tmp}/x.png"], "invalid choice"),
        (["plot", "network", "{model}", "--index", "10000", "--out", "{tmp}/x.png"], "--index"),
        (["plot", "network", "{model}", "--index", "-1", "--out", "{tmp}/x.png"], "--index"),
        (["plot", "weights", "{tmp}/missing.safetensors", "--out", "{tmp}/x.png"], "cannot open"),
        (["plot", "weights", "{model}", "--out", "{tmp}/x.gif"], ".png or .svg"),
        (["plot", "weights", "{model}", "--out", "{tmp}/no/x.png"], "does not exist"),
        (["plot", "mistakes", "{model}", "--count", "0", "--out", "{tmp}/x.png"], "--count"),
        (["plot", "network", "{model}", "--image", "{tmp}", "--out", "{tmp}/x.png"], "directory"),
        (["plot", "weights", "{model}"], "required"),
    ],
)
def test_bad_arguments_exit_2(trained, tmp_path, args, message):
    _, model = trained
    result = cli(*[a.format(model=model, tmp=tmp_path) for a in args])
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_example_notebook_runs(tmp_path):
    notebook = nbformat.read(EXAMPLES / "tour.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 10  # one figure per kind, and one example's wishes
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    view = "application/vnd.jupyter.widget-view+json"
    widgets = [o for o in outputs if view in o.get("data", {})]
    assert len(widgets) == 1  # the drawing pad, digitnet.widget(net)
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "guess 7; layers [(784,), (16,), (16,), (10,)]" in printed  # test image 0 is a 7
    assert "step 5: the 7 taught as a 3 costs" in printed  # "How it learns" ran its steps
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
