"""The network as an ONNX graph, for the runtimes models are deployed in.

Each layer ``a' = σ(W a + b)`` becomes two nodes: ``Gemm(a, W, b, transB=1)``, which
is the row form ``a Wᵀ + b`` used throughout digitnet, then the squashing function
(``Sigmoid``, ``Relu`` or ``Tanh``; ``Softmax`` or ``Sigmoid`` last).  The graph is
built with the ``onnx`` package's helper API at a pinned opset, so a file written
today reads the same in any runtime that supports that opset:

- input ``pixels``: float32 ``(N, n_0)``, as ``Network.forward`` takes them: for an
  MNIST network (n_0 = 784) the pixels in [0, 1], row by row (0 background, 1 ink);
- output ``activations``: float32 ``(N, n_L)``, the output activations a_L;
- output ``guess``: int64 ``(N,)``, the index of the brightest output neuron.

The file's metadata (``metadata_props``) holds the sizes, activations and, when the
model file recorded it, the test accuracy.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .. import __version__
from ..files.modelfile import input_description
from ..files.paths import atomic_write, check_output
from ..learn.network import Network

#: The ONNX operator set the graph is written against (that of ONNX 1.12, 2022, read
#: by every runtime since), and the IR version that goes with it.
OPSET = 17
IR_VERSION = 8
#: ONNX operator of each of digitnet's squashing functions, hidden or output.
OPERATORS = {"sigmoid": "Sigmoid", "relu": "Relu", "tanh": "Tanh", "softmax": "Softmax"}
FORMATS = ("onnx",)


def _onnx():
    """The ``onnx`` package, or a ValueError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ValueError(
            "ONNX export needs the onnx package: pip install 'digitnet[onnx]'"
        ) from None
    return onnx


def metadata(net: Network, info: dict | None = None) -> dict[str, str]:
    """The key/value strings stored with the graph: sizes, activations, input, and
    the test accuracy and training record a model file carries, where known."""
    info = info or {}
    props = {
        "sizes": json.dumps(list(net.sizes)),
        "activation": net.activation_name,
        "output": net.output_name,
        "n_parameters": str(net.n_parameters),
        "input": f"pixels: float32 (N, {net.sizes[0]}): {input_description(net.sizes[0])}",
        "digitnet_version": __version__,
    }
    if info.get("test_accuracy") is not None:
        props["test_accuracy"] = repr(float(info["test_accuracy"]))
    for key in ("loss", "seed", "data"):
        if info.get(key) is not None:
            props[key] = str(info[key])
    return props


def to_onnx(net: Network, info: dict | None = None):
    """An ``onnx.ModelProto`` computing ``net``: pixels (N, n_0) -> activations (N, n_L)
    and guess (N,).  ``info`` is a model file's record (``Model.info``), for metadata."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    a = "pixels"
    last = len(net.W) - 1
    for l, (W, b) in enumerate(zip(net.W, net.b, strict=True)):
        weights.append(numpy_helper.from_array(np.asarray(W, np.float32), f"layers.{l}.weight"))
        weights.append(numpy_helper.from_array(np.asarray(b, np.float32), f"layers.{l}.bias"))
        z = f"z{l + 1}"
        nodes.append(
            helper.make_node("Gemm", [a, f"layers.{l}.weight", f"layers.{l}.bias"], [z], transB=1)
        )  # z = a Wᵀ + b: (N, n_out)
        squash = net.output_name if l == last else net.activation_name
        a = "activations" if l == last else f"a{l + 1}"
        extra = {"axis": -1} if squash == "softmax" else {}
        nodes.append(helper.make_node(OPERATORS[squash], [z], [a], **extra))
    nodes.append(helper.make_node("ArgMax", ["activations"], ["guess"], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes,
        "digitnet",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", net.sizes[0]])],
        [
            helper.make_tensor_value_info("activations", TensorProto.FLOAT, ["N", net.sizes[-1]]),
            helper.make_tensor_value_info("guess", TensorProto.INT64, ["N"]),
        ],
        initializer=weights,
        doc_string=f"{net!r}: each layer a' = f(W a + b), here Gemm(a, W, b, transB=1)",
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="digitnet",
        producer_version=__version__,
        doc_string="The network of 3Blue1Brown's 'But what is a neural network?', on MNIST.",
    )
    helper.set_model_props(model, metadata(net, info))
    onnx.checker.check_model(model, full_check=True)
    return model


def export(
    path: str | os.PathLike, net: Network, info: dict | None = None, *, format: str = "onnx"
) -> None:
    """Write ``net`` to ``path`` in ``format`` (only "onnx"), atomically."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; expected one of {FORMATS}")
    check_output(path, size=4 * net.n_parameters + 4096)
    atomic_write(path, to_onnx(net, info).SerializeToString())
