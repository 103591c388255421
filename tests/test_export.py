"""ONNX export: the graph passes onnx.checker, and onnxruntime and onnx's own
reference evaluator compute what digitnet computes, on every MNIST test image."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx.reference import ReferenceEvaluator

from conftest import cli
from digitnet.files.modelfile import load
from digitnet.inspect.export import OPSET, export, to_onnx
from digitnet.learn.activations import ACTIVATIONS, OUTPUTS
from digitnet.train import TrainConfig, train_network

CASES = [(a, o) for a in sorted(ACTIVATIONS) for o in sorted(OUTPUTS)]
SHAPES = [(784, 16, 16, 10), (784, 32, 10), (784, 32, 16, 16, 10)]


@pytest.fixture(scope="module")
def pixels(mnist):
    return mnist.test_images.astype(np.float32) / 255  # (10000, 784) in [0, 1]


def run_both(model: onnx.ModelProto, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(activations, guess) from onnxruntime and from onnx.reference."""
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return [
        tuple(session.run(["activations", "guess"], {"pixels": x})),
        tuple(ReferenceEvaluator(model).run(["activations", "guess"], {"pixels": x})),
    ]


@pytest.mark.parametrize("activation,output", CASES)
def test_runtimes_agree_with_digitnet_on_all_test_images(activation, output, pixels, mnist):
    """A network trained briefly (random weights guess one digit for everything)."""
    sizes = SHAPES[CASES.index((activation, output)) % len(SHAPES)]
    config = TrainConfig(sizes, activation, output, epochs=2, validation=0, kernel="numpy")
    net, _ = train_network(mnist.train_images[:6000], mnist.train_labels[:6000], config)
    model = to_onnx(net)
    onnx.checker.check_model(model, full_check=True)
    want, guesses = net.forward(pixels), net.predict(pixels)
    assert np.mean(guesses == mnist.test_labels) > 0.3  # guesses worth comparing
    for activations, guess in run_both(model, pixels):
        assert activations.dtype == np.float32 and activations.shape == (10_000, 10)
        np.testing.assert_allclose(activations, want, rtol=0, atol=1e-5)
        assert guess.dtype == np.int64
        np.testing.assert_array_equal(guess, guesses)


def test_trained_model_exports_from_the_command_line(trained, tmp_path, pixels, mnist):
    net, path = trained
    out = tmp_path / "digits.onnx"
    result = cli("export", path, "--format", "onnx", "--out", out)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    (given,) = model.graph.input
    dims = given.type.tensor_type.shape.dim
    assert given.name == "pixels" and [d.dim_param or d.dim_value for d in dims] == ["N", 784]
    assert given.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    props = {p.key: p.value for p in model.metadata_props}
    info = load(path).info
    assert json.loads(props["sizes"]) == [784, 16, 16, 10]
    assert (props["activation"], props["output"]) == ("sigmoid", "softmax")
    assert float(props["test_accuracy"]) == info["test_accuracy"]
    for activations, guess in run_both(model, pixels):
        np.testing.assert_allclose(activations, net.forward(pixels), rtol=0, atol=1e-5)
        assert np.mean(guess == mnist.test_labels) == info["test_accuracy"]


def test_one_picture_at_a_time(trained, pixels):
    net, _ = trained
    (activations, guess), _ = run_both(to_onnx(net), pixels[:1])
    assert guess.shape == (1,) and int(guess[0]) == int(net.predict(pixels[0]))


def test_export_refuses_unknown_format(trained, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export(tmp_path / "x.onnx", trained[0], format="tflite")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["missing.safetensors", "--out", "{tmp}/a.onnx"], "missing.safetensors: cannot open"),
        (["{model}", "--out", "{tmp}"], "exists and is a directory"),
        (["{model}", "--out", "{model}"], "which this command reads"),
        (["{model}", "--format", "tflite", "--out", "{tmp}/a.onnx"], "invalid choice: 'tflite'"),
        (["{model}"], "required: --out"),
        (["{tmp}/model.onnx", "--out", "{tmp}/b.onnx"], "not a valid safetensors file"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(trained, tmp_path, args, message):
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    before = trained[1].read_bytes()
    args = [a.format(tmp=tmp_path, model=trained[1]) for a in args]
    result = cli("export", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert trained[1].read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("sizes", [(100, 16, 10), (784, 32, 10)])
def test_any_valid_model_exports_with_true_metadata(sizes, tmp_path):
    """A model of any input width (not only MNIST's 784) exports from the command line,
    and the file says what its input is."""
    from digitnet.files.modelfile import save
    from digitnet.learn.network import Network

    net = Network(sizes, "relu", rng=np.random.default_rng(0))
    save(tmp_path / "m.safetensors", net, {})
    result = cli("export", tmp_path / "m.safetensors", "--out", tmp_path / "m.onnx")
    assert result.returncode == 0, result.stderr
    assert f"(N, {sizes[0]})" in result.stdout
    model = onnx.load(tmp_path / "m.onnx")
    props = {p.key: p.value for p in model.metadata_props}
    assert props["input"].startswith(f"pixels: float32 (N, {sizes[0]}): ")
    assert ("row by row" in props["input"]) == (sizes[0] == 784)
    assert props["input"].endswith(load(tmp_path / "m.safetensors").info["input"])
    assert json.loads(props["sizes"]) == list(sizes)
    x = np.random.default_rng(1).random((5, sizes[0]), dtype=np.float32)
    for activations, guess in run_both(model, x):
        np.testing.assert_allclose(activations, net.forward(x), rtol=0, atol=1e-5)
        np.testing.assert_array_equal(guess, net.predict(x))
