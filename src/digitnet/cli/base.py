"""What every command shares: the exit codes, the error for arguments that do not fit
together, and the check that a model reads the test images it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EXIT_DIVERGED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
#: The model ``serve`` trains first when it does not exist, and ``train`` writes.
DEFAULT_MODEL = Path("model.safetensors")


class UsageError(ValueError):
    """Arguments that do not fit together."""


def option(dest: str) -> str:
    """An argparse ``dest`` as the option it came from: ``batch_size`` -> ``--batch-size``."""
    return "--" + dest.replace("_", "-")


def check_fits(
    model_path: Path, net, images: np.ndarray, labels: np.ndarray, source: str = "the test images"
) -> None:
    """The model reads these images (N, n_0) and has an output for each of their labels;
    ``source`` names the images in the error."""
    if images.shape[1] != net.sizes[0]:
        raise UsageError(
            f"{model_path} takes {net.sizes[0]} inputs but {source} "
            f"have {images.shape[1]} pixels"
        )
    classes = int(labels.max()) + 1 if len(labels) else 0
    if net.sizes[-1] < classes:
        raise UsageError(
            f"{model_path} has {net.sizes[-1]} outputs but the test labels run from 0 to "
            f"{classes - 1}"
        )


def check_pictures(model_path: Path, net) -> None:
    """Pictures give 784 inputs: the model must take that many."""
    if net.sizes[0] != 784:
        raise UsageError(f"{model_path} takes {net.sizes[0]} inputs; pictures give 784")
