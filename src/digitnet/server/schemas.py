"""The API's request and response models, each written once and shared by the routers
(``NudgeRequest`` is ``PredictRequest`` with a target), and ``ERRORS``, the error
answers the endpoints document.  FastAPI checks requests against these and builds
``/openapi.json`` from them."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: Most knock-outs one request may list.
MAX_KNOCKOUTS = 1000
#: The largest learning rate ``/api/step`` takes and the largest span of
#: ``/api/landscape``: past these the weights leave any range that means something
#: (and float32 costs may overflow).
MAX_LR, MAX_SPAN = 100.0, 100.0
#: The longest wait ``POST /api/train``'s "pace" may ask for between epochs, in seconds.
MAX_PACE = 10.0
#: What a request's "image" holds.
PNG_URL = "a PNG as a data URL: data:image/png;base64,..."
#: What a request's "grey" picture's "data" holds.
GREY_DATA = (
    "base64 of the zlib stream (deflate) of width x height bytes, row by row, "
    "0 black to 255 white"
)
KnockoutField = Annotated[
    list[Annotated[list[Annotated[int, Field(strict=True)]], Field(min_length=2, max_length=2)]]
    | None,
    Field(
        None,
        max_length=MAX_KNOCKOUTS,
        description="hidden neurons switched off: [[layer, index], ...], layer from 1",
    ),
]


class GreyPicture(BaseModel):
    """A picture as grey bytes: what the page's pad sends instead of a PNG (the same
    pixels, without the PNG's decoding and colour channels)."""

    model_config = ConfigDict(extra="forbid")
    width: int = Field(strict=True, ge=1, description="pixels per row")
    height: int = Field(strict=True, ge=1, description="rows")
    data: str = Field(description=GREY_DATA)


class PredictRequest(BaseModel):
    """Exactly one of ``image`` (a PNG data URL), ``grey`` (the same picture as grey
    bytes) or ``pixels`` (784 numbers)."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = Field(None, description=PNG_URL, examples=[])
    grey: GreyPicture | None = Field(None, description="a picture as grey bytes")
    pixels: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]] | None = (
        Field(None, min_length=784, max_length=784, description="784 pixels in [0, 1]")
    )
    model: str | None = Field(
        None, description="a model id from /api/models; the served one if left out"
    )
    knockout: KnockoutField = None

    @property
    def picture(self) -> str | GreyPicture | None:
        """The request's picture, a PNG data URL or grey bytes (None: it sent pixels)."""
        return self.image if self.image is not None else self.grey


class PredictResponse(BaseModel):
    digit: int = Field(description="the guess: the brightest output neuron")
    probabilities: list[float] = Field(description="the ten outputs, summing to 1")
    input: list[float] = Field(description="the 784 values the network saw, row by row")
    activations: list[list[float]] = Field(description="every layer's activations, a_0 to a_L")
    not_a_digit: bool = Field(
        description="whether the picture is probably not a digit (the network must still "
        "pick one): a dot, more ink than any MNIST digit, or unlike MNIST's pictures of the guess"
    )
    reason: str | None = Field(description="why not_a_digit is true, in words; else null")


class ModelResponse(BaseModel):
    sizes: list[int]
    activation: str
    output: str
    n_parameters: int
    test_accuracy: float | None
    weights: list[list[list[float]]] = Field(description="W[l], each (n_out, n_in)")
    biases: list[list[float]] = Field(description="b[l], each (n_out,)")


class SampleResponse(BaseModel):
    label: int = Field(description="the digit MNIST says it is")
    index: int = Field(description="its index in the MNIST test set")
    pixels: list[float] = Field(description="784 values in [0, 1]")


class StepsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(description=PNG_URL)


class StepsResponse(BaseModel):
    size: list[int] = Field(description="[height, width] of the picture as worked on")
    ink: str = Field(description="the ink found, white on black, cropped: a PNG data URL")
    bounds: list[int] = Field(description="[top, left, bottom, right] of the ink (ends excluded)")
    stroke: float = Field(description="the stroke width (px) the ink would have in the 20x20 box")
    pen: str = Field(description="what was done to the strokes: kept, thickened, thinned, shrunk")
    box: list[list[float]] = Field(description="the ink fitted into the 20x20 box, (h, w)")
    offset: list[int] = Field(description="[top, left] of the box in the 28x28 input")
    input: list[float] = Field(description="the 784 values the network sees, row by row")


class TopImage(BaseModel):
    index: int = Field(description="its index in the MNIST test set")
    label: int = Field(description="the digit MNIST says it is")
    activation: float = Field(description="the neuron's activation for it")
    image: str = Field(description="the 28x28 picture as a PNG data URL")


class KnockoutScore(BaseModel):
    accuracy: float = Field(description="test accuracy with this neuron switched off")
    per_digit: list[float] = Field(description="per-digit test accuracy with it off")


class NeuronResponse(BaseModel):
    layer: int = Field(description="weight layer from 1 (1 = first hidden layer)")
    index: int = Field(description="the neuron in its layer, from 0")
    weights: list[float] = Field(description="its n_in incoming weights")
    bias: float
    top: list[TopImage] = Field(description="the test images it answers most, highest first")
    wants: list[float] = Field(description="784 values in [0, 1]: the input it wants")
    knockout: KnockoutScore | None = Field(None, description="hidden neurons only")


class NudgeRequest(PredictRequest):
    """What ``/api/predict`` takes, and the digit to make the network say."""

    target: int = Field(strict=True, description="the digit to make the network answer")
    until: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False,
        description="go on until the network gives the target at least this probability "
        "(such as 0.9); left out: stop as soon as the target is the guess",
    )  # fmt: skip


class NudgeResponse(BaseModel):
    pixels: list[float] = Field(description="the nudged 784 values in [0, 1]")
    digit: int = Field(description="what the network answers for pixels")
    probabilities: list[float] = Field(description="the ten outputs for pixels")
    linf: float = Field(description="the largest change of one pixel")
    l2: float = Field(description="the length of the change, sqrt(sum of squares)")
    steps: int = Field(description="gradient steps taken")


class GradientRequest(PredictRequest):
    """What ``/api/predict`` takes (without knock-outs), and what the picture is."""

    label: int = Field(strict=True, description="the digit the picture is, 0-9")


class StepRequest(GradientRequest):
    lr: float = Field(
        1.0, gt=0, le=MAX_LR, allow_inf_nan=False,
        description=f"the learning rate, positive, at most {MAX_LR:g}: θ − lr·∇C",
    )  # fmt: skip


class TopWeight(BaseModel):
    layer: int = Field(description="weight layer from 1 (1 = into the first hidden layer)")
    to: int = Field(description="the neuron of layer `layer` it feeds")
    from_: int = Field(alias="from", description="the neuron of layer `layer - 1` (0: pixels)")
    nudge: float = Field(description="−∂C/∂w")


class GradientResponse(BaseModel):
    loss: str = Field(description="the cost function: the model's own")
    label: int
    cost: float = Field(description="the cost of this one example")
    digit: int = Field(description="the guess")
    probabilities: list[float]
    deltas: list[list[float]] = Field(description="−∂C/∂z_l for l = 1..L (= −∂C/∂b_l)")
    wants: list[list[float]] = Field(description="−∂C/∂a_l for each hidden layer")
    weight_nudges: list[list[list[float]]] = Field(description="−∂C/∂W_l, each (n_out, n_in)")
    top: list[TopWeight] = Field(description="the weights with the largest |∂C/∂w|")


class StepResponse(BaseModel):
    model: str = Field(description="the new model's id, listed in /api/models")
    cost_before: float
    cost_after: float
    digit_before: int
    digit_after: int
    probabilities_after: list[float]


class MinibatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sizes: list[Annotated[int, Field(strict=True)]] = Field(
        min_length=1, max_length=20, description="batch sizes, each 1-60,000"
    )
    seed: int = Field(0, strict=True, description="the draws' random seed")
    model: str | None = Field(None, description="a model id; the served one if left out")


class BatchResult(BaseModel):
    size: int
    indices: list[int] = Field(description="the training images drawn, 0-based")
    cost: float
    norm: float = Field(description="‖∇C‖ of this batch's mean gradient")
    cosine: float = Field(description="cosine between this batch's gradient and the full one")


class FullResult(BaseModel):
    cost: float = Field(description="the mean cost over all 60,000 training images")
    norm: float = Field(description="‖∇C‖ of the whole training set")


class MinibatchResponse(BaseModel):
    full: FullResult
    batches: list[BatchResult]


class LandscapeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="a model id; the served one if left out")
    size: int = Field(21, strict=True, description="points a side, odd, 5-41")
    span: float = Field(
        1.0, gt=0, le=MAX_SPAN, allow_inf_nan=False,
        description=f"α and β run over [−span, span], span positive, at most {MAX_SPAN:g}",
    )  # fmt: skip
    seed: int = Field(0, strict=True, description="the random direction's seed")


class LandscapeResponse(BaseModel):
    alphas: list[float]
    betas: list[float]
    cost: list[list[float]] = Field(description="the mean cost, rows β, columns α")
    directions: list[list[float]] = Field(description="d₁, d₂ in /api/model's order")
    path: list[list[float]] | None = Field(None, description="(α, β) of each epoch's weights")


class StepRecord(BaseModel):
    source: str = Field(description="the model stepped from")
    label: int
    lr: float
    loss: str


class ErrorResponse(BaseModel):
    error: str


class ModelSummary(BaseModel):
    id: str
    sizes: list[int]
    activation: str
    output: str
    test_accuracy: float | None
    step: StepRecord | None = Field(None, description="for a model made by /api/step")
    name: str = Field("", description="the name its trainer gave it (its id otherwise)")
    mine: bool = Field(False, description="whether the caller's browser trained it")


class TrainPace(BaseModel):
    """The one field of ``POST /api/train`` that is not a training setting: how slowly
    to go, so that each epoch can be watched.  It changes no weight."""

    pace: float = Field(
        0.0, ge=0, le=MAX_PACE, strict=True, allow_inf_nan=False,
        description=f"seconds at least from one epoch to the next, 0-{MAX_PACE:g}; 0: no wait",
    )  # fmt: skip


class TrainStarted(BaseModel):
    id: str = Field(description="the run's id, also the id of the model it makes")
    name: str = Field(description="the run's name (the request's, or one made up)")
    position: int = Field(description="0: training now; n: the n-th run waiting")
    estimate_seconds: float = Field(description="its estimated work on this machine")


class TrainStopped(BaseModel):
    id: str
    state: str = Field(description="stopping, or done/error when it had already ended")


class TrainOptions(BaseModel):
    defaults: dict = Field(description="the value of each setting a request may give")
    limits: dict = Field(description="the most each bounded setting may be")
    choices: dict = Field(description="the names each named setting may take")
    running: dict | None = Field(
        description="the run in progress, if any: id, name, epochs, state, position, mine"
    )
    queue: list[dict] = Field(description="the run in progress, then those waiting, in order")
    enabled: bool = Field(description="whether new runs are taken (the teacher's switch)")
    help: dict = Field(description="one line of help for each field, as `digitnet train` has")


ERRORS = {
    400: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


def rounded(values: np.ndarray, digits: int = 5) -> list:
    """An array as (nested) lists of floats rounded to ``digits`` decimals, for JSON."""
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()
