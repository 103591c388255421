"""The work a training run asks for, checked before it is queued: its estimated
seconds on this machine from its FLOPs (``estimate_seconds``), against ``WORK_BUDGET``.

A run of E epochs over N training images in batches of B, through a network of P
weights and biases, costs about 6·P FLOPs an image an epoch (2·P forward, 4·P
backward), plus what a batch costs whatever its size: passes over every weight (the
update, the gradient) and the loop's own calls.  The constants below were fitted to
the NumPy loop; the runs the page starts use it unless the compiled loop is built,
which is faster, so the estimate errs long.
"""

from __future__ import annotations

from ..config import TrainConfig
from ..learn.network import count_parameters

#: Most seconds of work one run may take (estimated before, and enforced while it runs).
WORK_BUDGET = 120.0
#: The cost model of ``estimate_seconds``, fitted to the NumPy loop on one core of a
#: 2-core AMD EPYC VM under load (1 BLAS thread, as the worker runs): a batch of B
#: images through a network of P parameters takes BATCH_SECONDS + P·PARAM_SECONDS
#: (memory-bound passes over the weights) + 6·P·B / GEMM_RATE (the FLOPs of forward and
#: backward passes); validation adds 2·P / GEMM_RATE per image; STARTUP_SECONDS start
#: the worker and load the digits.  Measured batches of seven networks and batch sizes
#: took 0.3-1.1 times these.
BATCH_SECONDS = 0.15e-3
PARAM_SECONDS = 25e-9
GEMM_RATE = 15e9
STARTUP_SECONDS = 3.0
#: Training images MNIST holds (the validation split is taken from them).
MNIST_TRAIN = 60_000


class Refused(RuntimeError):
    """A run that cannot be queued: ``status`` is the HTTP status that says why (403
    training switched off, 413 over the work budget, 429 one run per client, 503 the
    queue is full)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def estimate_seconds(config: TrainConfig, pace: float = 0.0, extra: int = 0) -> float:
    """Seconds ``config`` should take on this machine, from its work: per epoch,
    ⌈N/B⌉ batches of (BATCH_SECONDS + P·PARAM_SECONDS + 6·P·B / GEMM_RATE), and the
    validation's 2·P·V / GEMM_RATE, N = 60,000 − V training images (and ``extra``
    pictures an epoch, added to MNIST's), or ``pace`` if
    longer (a paced run waits that long between epochs); plus STARTUP_SECONDS."""
    p, b, v = count_parameters(config.sizes), config.batch_size, min(config.validation, MNIST_TRAIN)
    batches = -(-(MNIST_TRAIN - v + extra) // b)
    batch = BATCH_SECONDS + p * PARAM_SECONDS + 6 * p * b / GEMM_RATE
    epoch = batches * batch + 2 * p * v / GEMM_RATE
    return STARTUP_SECONDS + config.epochs * max(epoch, pace)


def check_budget(
    config: TrainConfig, budget: float = WORK_BUDGET, pace: float = 0.0, extra: int = 0
) -> float:
    """``estimate_seconds(config, pace, extra)``, or Refused (413) naming the estimate
    and the budget."""
    seconds = estimate_seconds(config, pace, extra)
    if seconds > budget:
        raise Refused(
            413,
            f"this training would take about {seconds:,.0f} s here, over the budget of "
            f"{budget:g} s a run; ask for fewer epochs, fewer or smaller layers, larger "
            "batches or a shorter pace",
        )
    return seconds
