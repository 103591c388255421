"""The page's drawing pad, guess and activation cascade as a Jupyter widget.

>>> import digitnet
>>> w = digitnet.widget("model.safetensors")   # or a Network, or a loaded Model
>>> w                                          # draw in the cell's pad
>>> w.digit, w.pixels.shape, [a.shape for a in w.activations]
(7, (784,), [(784,), (16,), (16,), (10,)])
>>> w.pixels = data.test_images[0]             # shows that digit on the pad

The widget runs on anywidget.  Its JavaScript is the page's own: ``static/widget.js``
imports the page's modules (``diagram.js``, ``pad.js``, ``guess.js``) and ``bundle``
inlines them into the one ES module anywidget loads (a module loaded from a string
cannot import files by relative path).  Predictions run here, in Python, through the
functions /api/predict uses: ``preprocess.read_digit`` brings the pad's PNG to MNIST's
form and ``recognise.predict_pixels`` runs ``Network.trace``, a' = σ(W a + b) layer by
layer.  (The module is not named ``widget``: ``digitnet.widget`` is the function, and
importing a submodule of that name would replace it on the package.)
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

import numpy as np

try:
    import anywidget
    import traitlets
except ImportError as e:  # the notebook extra is not installed
    raise ImportError(
        f"digitnet.widget needs anywidget ({e.name} is missing): pip install 'digitnet[notebook]'"
    ) from None

from .files.modelfile import Model, load
from .learn.network import Network
from .vision.preprocess import PictureError, read_digit
from .vision.recognise import doubt as doubt_of
from .vision.recognise import predict_pixels

Array = np.ndarray

STATIC = Path(str(resources.files("digitnet") / "static"))
#: ``import { a, b } from "./module.js";``, the only imports the page's modules use.
IMPORT = re.compile(r'^import \{([^}]*)\} from "\./([\w-]+\.js)";\n', re.MULTILINE)
#: A top-level declaration: two inlined modules must not declare the same name.
DECLARATION = re.compile(r"^(?:export )?(?:const|let|var|function|class) (\w+)", re.MULTILINE)


def bundle(entry: str, folder: Path = STATIC) -> str:
    """The ES module ``folder/entry`` with the modules it imports from the same folder
    inlined before it, each once, each after those it imports.  Refuses an import it
    cannot inline (another form, a renamed name, a cycle) and two modules declaring the
    same top-level name, naming the files."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"{' -> '.join((*path, name))}: modules import each other")
        if name in order:
            return
        for names, dependency in IMPORT.findall((folder / name).read_text("utf-8")):
            if " as " in names:
                raise ValueError(f"{name}: 'import {{{names}}}' renames; import by name")
            visit(dependency, (*path, name))
        order.append(name)

    visit(entry, ())
    parts, declared = [], {}
    for name in order:
        source = IMPORT.sub("", (folder / name).read_text("utf-8"))
        if re.search(r"^\s*import\b", source, re.MULTILINE):
            raise ValueError(f"{name}: an import other than 'import {{...}} from \"./x.js\";'")
        for declaration in DECLARATION.findall(source):
            if declaration in declared:
                raise ValueError(
                    f"{declaration!r} is declared in both {declared[declaration]} and {name}"
                )
            declared[declaration] = name
        parts.append(f"// ---- {name} ----\n{source}")
    return "\n".join(parts)


def as_pixels(value) -> Array:
    """784 pixels (or 28x28) in [0, 1], or uint8 0-255 -> float32 (784,), read-only."""
    x = np.asarray(value)
    if x.size != 784:
        raise traitlets.TraitError(f"pixels: expected 784 values (28x28), got shape {x.shape}")
    if x.dtype == np.uint8:
        x = x / 255
    if x.dtype.kind not in "uif":
        raise traitlets.TraitError(f"pixels: expected numbers, got dtype {x.dtype}")
    x = x.astype(np.float32).reshape(784)
    if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise traitlets.TraitError(
            f"pixels: expected values in [0, 1], got {float(x.min()):g} to {float(x.max()):g}"
        )
    x.flags.writeable = False
    return x


class Pixels(traitlets.TraitType):
    """The widget's input: a read-only float32 array (784,) in [0, 1]."""

    info_text = "784 pixels in [0, 1] (or uint8 0-255)"
    default_value = np.zeros(784, dtype=np.float32)

    def validate(self, obj, value) -> Array:
        return as_pixels(value)


def _list(values: Array) -> list[float]:
    return np.round(np.asarray(values, dtype=np.float64), 5).tolist()


class DigitWidget(anywidget.AnyWidget):
    """Draw a digit in a notebook cell and watch the network think.

    ``pixels`` (784,) is the input, row by row, white ink 1 on black 0: the pad's
    drawing in MNIST's form, or whatever is assigned to it (the pad then shows it).
    ``activations`` are every layer's a_l = σ(W_l a_{l-1} + b_l), [a_0 (784,), a_1
    (16,), ..., a_L (10,)]; ``probabilities`` the ten outputs normalised to sum to 1;
    ``digit`` the guess, None while the input is blank.  ``error`` says why the last
    drawing could not be read ("" when it could).  All are traitlets: ``observe`` them.
    """

    _esm = traitlets.Unicode(bundle("widget.js")).tag(sync=True)
    _css = traitlets.Unicode(
        (STATIC / "diagram.css").read_text("utf-8") + (STATIC / "widget.css").read_text("utf-8")
    ).tag(sync=True)
    #: Sizes, activation and weights: what the diagram draws.
    _network = traitlets.Dict().tag(sync=True)
    #: The sequence number of the pad message the pixels came from; 0: set from Python.
    _drawn = traitlets.Int(0).tag(sync=True)
    #: How many times the pixels have been set from Python.  The pad sends the count it
    #: had drawn on with each message, so one drawn before the last such picture reached
    #: it (still on its way when the picture was set) is dropped, not read over it.
    _generation = traitlets.Int(0).tag(sync=True)

    pixels = Pixels().tag(sync=True, to_json=lambda x, _: _list(x))
    activations = traitlets.List(read_only=True).tag(
        sync=True, to_json=lambda acts, _: [_list(a) for a in acts]
    )
    probabilities = traitlets.List(traitlets.Float(), read_only=True).tag(sync=True)
    digit = traitlets.Int(None, allow_none=True, read_only=True).tag(sync=True)
    error = traitlets.Unicode("", read_only=True).tag(sync=True)
    #: Why the input is probably not a digit (``recognise.doubt``), or "".
    doubt = traitlets.Unicode("", read_only=True).tag(sync=True)

    def __init__(self, net: Network, **kwargs) -> None:
        if net.sizes[0] != 784:
            raise ValueError(
                f"the widget draws 28x28 pictures: expected a model with 784 inputs, "
                f"this one takes {net.sizes[0]}"
            )
        self.net = net
        self._pad = False  # whether the pixels being set came from the pad
        super().__init__(
            _network={
                "sizes": list(net.sizes),
                "activation": net.activation_name,
                "weights": [_list(W) for W in net.W],
            },
            **kwargs,
        )
        self.on_msg(self._message)
        self._predict(self.pixels)

    @traitlets.observe("pixels")
    def _pixels_changed(self, change) -> None:
        if not self._pad:
            self._drawn = 0
            self._generation += 1
        self._predict(change["new"])

    def _predict(self, pixels: Array) -> None:
        """The network's answer for ``pixels``, into the traits, sent in one message."""
        prediction = predict_pixels(self.net, pixels)
        with self.hold_sync():
            self.set_trait("activations", prediction.activations)
            self.set_trait("probabilities", prediction.probabilities)
            self.set_trait("digit", prediction.digit if pixels.any() else None)
            reason = doubt_of(pixels, prediction.digit) if pixels.any() else None
            self.set_trait("doubt", reason or "")

    def _message(self, _widget, content: dict, buffers: list) -> None:
        """A message from the pad: ``{"kind": "drawing", "seq": n}`` with the pad's PNG
        as its one buffer, ``{"kind": "pixels", "seq": n, "pixels": [784]}`` or
        ``{"kind": "clear", "seq": n}``, each with the ``generation`` it was drawn in."""
        kind, seq = content.get("kind"), content.get("seq")
        if not isinstance(seq, int) or seq < 1:
            return  # not the pad's
        if content.get("generation") != self._generation:
            return  # drawn before the picture set from Python since
        try:
            if kind == "drawing" and len(buffers) == 1:
                pixels = read_digit(bytes(buffers[0]))
            elif kind == "pixels":
                pixels = as_pixels(content.get("pixels"))
            elif kind == "clear":
                pixels = np.zeros(784, dtype=np.float32)
            else:
                return
        except (PictureError, traitlets.TraitError) as e:
            self.set_trait("error", str(e))
            return
        with self.hold_sync():
            self._pad = True
            try:
                self._drawn = seq
                self.set_trait("error", "")
                self.pixels = pixels
            finally:
                self._pad = False


def widget(model: Network | Model | str | os.PathLike) -> DigitWidget:
    """The draw-a-digit widget for a network, a loaded model file or its path."""
    if isinstance(model, (str, os.PathLike)):
        model = load(model)
    if isinstance(model, Model):
        model = model.network
    if not isinstance(model, Network):
        raise TypeError(
            f"widget: expected a Network, a Model or a model file's path, "
            f"got {type(model).__name__}"
        )
    return DigitWidget(model)
