"""How big things may be, checked before anything is allocated.

A layer size, a batch size or a model file can ask for more memory than any machine
has: ``--sizes 784,100000000,10`` is 78 billion weights, a batch of 10⁸ rows is 300 GB
of inputs.  These checks turn such requests into one clear sentence up front, instead
of a ``MemoryError`` (or the machine swapping) minutes later.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .learn.network import count_parameters

#: Most layers of weights a network may have (sizes then has at most one more entry).
MAX_LAYERS = 64
#: Most weights and biases in one network: 200 MB as float32.
MAX_PARAMETERS = 50_000_000
#: Most neurons in one layer.
MAX_WIDTH = 1_000_000
#: Most epochs a run may ask for, or a file may record (the page allows fewer:
#: ``settings.TrainConfig.epochs``).
MAX_EPOCHS = 10_000
#: Largest whole number in counters (steps, seeds): what a float64 holds exactly.
MAX_COUNT = 2**53
#: Bytes per float32 number.
FLOAT = 4
#: Largest setting (learning rate, weight decay, ...) accepted: training computes in
#: float32, whose largest finite number this is.
MAX_SETTING = 3.4e38


class SizeError(ValueError):
    """A request for more than digitnet allows or the machine can hold."""


def check_layer_count(n: int) -> None:
    """Refuse more than ``MAX_LAYERS + 1`` layer sizes, before any of them is read."""
    if n > MAX_LAYERS + 1:
        raise SizeError(
            f"{n:,} layer sizes: at most {MAX_LAYERS + 1} (input, hidden layers, output)"
        )


def check_network_size(sizes: Sequence[int]) -> None:
    """Refuse layer sizes beyond ``MAX_LAYERS``, ``MAX_WIDTH`` or ``MAX_PARAMETERS``,
    with a message short enough to read whatever ``sizes`` holds."""
    check_layer_count(len(sizes))
    widest = max(sizes, default=0)
    if widest > MAX_WIDTH:
        raise SizeError(f"a layer of {widest:,} neurons: at most {MAX_WIDTH:,}")
    n = count_parameters(sizes)
    if n > MAX_PARAMETERS:
        raise SizeError(
            f"sizes {','.join(map(str, sizes))} make {n:,} weights and biases: "
            f"at most {MAX_PARAMETERS:,}"
        )


def available_memory() -> int | None:
    """Bytes of memory the machine can still give (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def training_bytes(sizes: Sequence[int], batch_size: int, n_train: int, n_validation: int) -> int:
    """About how much memory a training run takes, in bytes.

    P parameters live in about ten float32 copies (weights, gradient, the best
    weights, the decay mask and term, up to two optimiser moments, the copies a
    checkpoint takes); a batch of B rows keeps about four float32 arrays per layer
    (activations, z, δ, σ'); the validation split is evaluated 10,000 rows at a time
    with two arrays per layer; the training images are copied once per epoch (uint8)
    and the validation images once as float32."""
    P, width = count_parameters(sizes), sum(sizes)
    params = 10 * P * FLOAT
    batch = 4 * batch_size * width * FLOAT
    validation = 2 * min(n_validation, 10_000) * width * FLOAT
    images = (n_train + n_validation) * sizes[0] + n_validation * sizes[0] * FLOAT
    return params + batch + validation + images


def check_training_size(
    sizes: Sequence[int], batch_size: int, n_train: int, n_validation: int
) -> None:
    """Refuse, before anything is allocated, a batch larger than the training set and
    a run that needs more memory than the machine has available."""
    check_network_size(sizes)
    if batch_size > n_train:
        raise SizeError(f"--batch-size {batch_size:,} is more than the {n_train:,} training images")
    need, have = training_bytes(sizes, batch_size, n_train, n_validation), available_memory()
    if have is not None and need > have:
        raise SizeError(
            f"this run needs about {need / 2**30:.1f} GiB of memory but "
            f"{have / 2**30:.1f} GiB is available; use smaller --sizes or --batch-size"
        )
