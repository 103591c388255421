"""digitnet: the 784-16-16-10 network of 3Blue1Brown's video, trained on MNIST.

>>> from digitnet import TrainConfig, load_mnist, predict_image, train_network
>>> data = load_mnist()
>>> net, history = train_network(data.train_images, data.train_labels, TrainConfig())
>>> net.predict(data.test_images[:5])
>>> predict_image(net, "my_digit.png").digit

The names below are loaded from their modules on first use, so that importing the
package (as ``digitnet`` the command does first) costs nothing and cannot be
interrupted halfway by Ctrl-C outside the command's own error handling.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "DataError": "files.data",
    "History": "config",
    "Model": "files.modelfile",
    "ModelFileError": "files.modelfile",
    "Network": "learn.network",
    "PictureError": "vision.preprocess",
    "Prediction": "vision.recognise",
    "TrainConfig": "config",
    "TrainingDiverged": "config",
    "evaluate": "train",
    "fit": "train",
    "load": "files.modelfile",
    "load_mnist": "files.data",
    "predict_image": "vision.recognise",
    "read_digit": "vision.preprocess",
    "read_idx": "files.data",
    "save": "files.modelfile",
    "to_mnist": "vision.preprocess",
    "train_network": "train",
    "widget": "notebook",
}

#: Modules that ``from digitnet import NAME`` gives, where they live in the package:
#: ``explore`` was imported so before the package had subpackages.
_MODULES = {"explore": "inspect.explore"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _MODULES:
        value = import_module(f".{_MODULES[name]}", __name__)
    elif name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'digitnet' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_MODULES])
