"""digitnet: the 784-16-16-10 network of 3Blue1Brown's video, trained on MNIST.

>>> from digitnet import TrainConfig, load_mnist, predict_image, train_network
>>> data = load_mnist()
>>> net, history = train_network(data.train_images, data.train_labels, TrainConfig())
>>> net.predict(data.test_images[:5])
>>> predict_image(net, "my_digit.png").digit
"""

from .config import History, TrainConfig, TrainingDiverged
from .data import DataError, load_mnist, read_idx
from .modelfile import Model, ModelFileError, load, save
from .network import Network
from .preprocess import PictureError, read_digit, to_mnist
from .recognise import Prediction, predict_image
from .train import evaluate, fit, train_network

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "History",
    "Model",
    "ModelFileError",
    "Network",
    "PictureError",
    "Prediction",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "load",
    "load_mnist",
    "predict_image",
    "read_digit",
    "read_idx",
    "save",
    "to_mnist",
    "train_network",
]
