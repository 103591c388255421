"""What model and checkpoint files say about themselves, checked field by field.

A model file's ``digitnet`` metadata and a checkpoint's ``digitnet_checkpoint``
metadata are JSON written by digitnet, but a file can be damaged or made by hand.
Everything read from them passes through a schema here before it is used: each
field's type (a whole number is not a float, ``true`` is not a number), its range,
the names it may hold, how many entries a list may have, and no NaN or infinity
anywhere (so ``digitnet info --json`` always prints JSON).  Sizes are bounded
(``limits``) before anything the size describes is allocated, and error messages
quote at most a few dozen characters of what arrived.

The schema of a config is derived from the settings' declarations (``settings``),
that of ``Epoch`` from its fields and annotations, so both follow those records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import MISSING, fields

from ..config import Epoch, TrainConfig
from ..learn.activations import ACTIVATIONS, LOSS_NAMES, OUTPUTS
from ..limits import MAX_COUNT, MAX_EPOCHS, MAX_LAYERS, MAX_SETTING
from ..settings import SETTINGS, Setting, short
from ..settings import layer_sizes as valid_layer_sizes

#: Longest metadata text read, in characters.
MAX_JSON_CHARS = 16 * 1024 * 1024
#: Deepest nesting of lists and objects in metadata.
MAX_DEPTH = 32
#: Longest list in metadata that is not an epoch list.
MAX_ITEMS = 100_000
STOPPED = ("completed", "early-stopped", "interrupted")

Check = Callable[[object, str], object]

class MetadataError(ValueError):
    """Metadata that does not fit its schema; says where and what arrived."""


# -- JSON ------------------------------------------------------------------------------


def _refuse_constant(name: str) -> float:
    raise MetadataError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MetadataError(f"{short(text)} overflows a float")
    return value


def parse_json(text: str, what: str) -> object:
    """Parse metadata JSON: bounded in length and depth, no NaN or infinity."""
    if not isinstance(text, str) or len(text) > MAX_JSON_CHARS:
        raise MetadataError(f"{what}: more than {MAX_JSON_CHARS:,} characters of metadata")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except MetadataError as e:
        raise MetadataError(f"{what}: {e}") from None
    except RecursionError:
        raise MetadataError(f"{what}: JSON nested too deeply") from None
    except ValueError as e:
        raise MetadataError(f"{what}: not valid JSON ({short(str(e), 80)})") from None
    stack = [(value, 1)] if isinstance(value, (list, dict)) else []
    while stack:  # iterative: the depth check itself must not recurse
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MetadataError(f"{what}: JSON nested more than {MAX_DEPTH} levels deep")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (list, dict)))
    return value


# -- the pieces of a schema ----------------------------------------------------------------


def integer(lo: int, hi: int) -> Check:
    """A whole number in [lo, hi] (not a bool, not 3.0)."""

    def check(value: object, where: str) -> int:
        if type(value) is not int or not lo <= value <= hi:
            raise MetadataError(f"{where}: expected a whole number {lo}-{hi}, got {short(value)}")
        return value

    return check


def number(lo: float = -math.inf, hi: float = math.inf) -> Check:
    """A finite number in [lo, hi] (an int or a float, not a bool); a float back."""

    def check(value: object, where: str) -> float:
        if type(value) not in (int, float) or not math.isfinite(value) or not lo <= value <= hi:
            span = f" in [{lo:g}, {hi:g}]" if math.isfinite(lo) or math.isfinite(hi) else ""
            raise MetadataError(f"{where}: expected a number{span}, got {short(value)}")
        return float(value)

    return check


def string(choices=None, max_length: int = 1000) -> Check:
    """A string, one of ``choices`` if given."""

    def check(value: object, where: str) -> str:
        if not isinstance(value, str) or len(value) > max_length:
            raise MetadataError(f"{where}: expected a string, got {short(value)}")
        if choices is not None and value not in choices:
            raise MetadataError(
                f"unknown {where} {short(value)}; expected one of {sorted(choices)}"
            )
        return value

    return check


def boolean(value: object, where: str) -> bool:
    if type(value) is not bool:
        raise MetadataError(f"{where}: expected true or false, got {short(value)}")
    return value


def nullable(inner: Check) -> Check:
    def check(value: object, where: str) -> object:
        return None if value is None else inner(value, where)

    return check


def anything(value: object, where: str) -> object:
    """Any JSON value (already bounded in depth and free of NaN by ``parse_json``)."""
    return value


def list_of(inner: Check, max_length: int = MAX_ITEMS) -> Check:
    def check(value: object, where: str) -> list:
        if not isinstance(value, list):
            raise MetadataError(f"{where}: expected a list, got {short(value)}")
        if len(value) > max_length:
            raise MetadataError(f"{where}: {len(value):,} entries, at most {max_length:,}")
        return [inner(item, f"{where}[{i}]") for i, item in enumerate(value)]

    return check


def record(schema: dict[str, tuple[Check, bool]], *, keep_others: bool) -> Check:
    """A JSON object: each known key checked (``required`` ones must be there; the
    others may be absent or null); other keys kept as they are, or refused."""

    def check(value: object, where: str) -> dict:
        if not isinstance(value, dict):
            raise MetadataError(f"{where}: expected an object, got {short(value)}")
        out = {}
        for key, (inner, required) in schema.items():
            path = f"{where}.{key}" if where else key
            if key not in value:
                if required:
                    raise MetadataError(f"{where or 'metadata'}: missing {key!r}")
                continue
            item = value[key]
            out[key] = None if item is None and not required else inner(item, path)
        others = [key for key in value if key not in schema]
        if others and not keep_others:
            raise MetadataError(f"{where or 'metadata'}: unexpected {short(others[0])}")
        out.update({key: value[key] for key in others})
        return out

    return check


def layer_sizes(value: object, where: str) -> list[int]:
    """Layer sizes: a list of whole numbers that ``settings.layer_sizes`` accepts."""
    # (a list longer than any network is refused by its length, before it is read)
    if not isinstance(value, list) or not all(type(n) is int for n in value[: MAX_LAYERS + 2]):
        raise MetadataError(f"{where}: expected a list of whole numbers, got {short(value)}")
    try:
        valid_layer_sizes(value)
    except ValueError as e:  # SizeError among them
        raise MetadataError(f"{where}: {e}") from None
    return value


def setting_check(setting: Setting) -> Check:
    """The check of one training setting as JSON, from its declaration."""
    if setting.kind == "sizes":
        return layer_sizes

    def check(value: object, where: str) -> object:
        if not setting.accepts(value):
            raise MetadataError(f"{where}: expected {setting.expected()}, got {short(value)}")
        return float(value) if setting.kind == "float" else value

    return check


def config_schema(spec: dict[str, Setting] = SETTINGS) -> Check:
    """The schema of a config, every setting optional; keys it does not know are kept
    (``TrainConfig.from_dict`` ignores them), so files from other versions stay readable."""
    return record({name: (setting_check(s), False) for name, s in spec.items()}, keep_others=True)


#: Ranges of the whole-number fields of ``Epoch``.
INT_RANGES: dict[str, tuple[int, int]] = {"epoch": (1, MAX_EPOCHS)}
#: Ranges of the number fields of ``Epoch``.
FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "val_accuracy": (0.0, 1.0),
    "lr": (0.0, MAX_SETTING),
    "seconds": (0.0, MAX_SETTING),
    "loss": (0.0, MAX_SETTING),
    "val_loss": (0.0, MAX_SETTING),
}


def field_check(name: str, annotation: str) -> Check | None:
    """The check for an ``Epoch`` field from its name and annotation, or None for an
    annotation this module does not know (a test keeps that list empty)."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if base == "int":
        check = integer(*INT_RANGES.get(name, (0, MAX_COUNT)))
    elif base == "float":
        check = number(*FLOAT_RANGES.get(name, (-MAX_SETTING, MAX_SETTING)))
    else:
        return None
    return nullable(check) if optional else check


def dataclass_schema(cls: type, *, all_required: bool) -> dict[str, tuple[Check, bool]]:
    """A record schema from a dataclass: a field without a default is required
    (every field when ``all_required``)."""
    schema = {}
    for f in fields(cls):
        check = field_check(f.name, str(f.type))
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        schema[f.name] = (check or anything, all_required or not has_default)
    return schema


#: A config, as model files and checkpoints keep it: derived from ``settings``.
CONFIG = config_schema()


EPOCH = record(dataclass_schema(Epoch, all_required=False), keep_others=False)
_HISTORY = record(
    {
        "epochs": (list_of(EPOCH, MAX_EPOCHS), True),
        "best_epoch": (integer(0, MAX_EPOCHS), True),
        "stopped": (string(STOPPED), True),
    },
    keep_others=False,
)


def history(value: object, where: str) -> dict:
    """A History record: epochs numbered 1, 2, ... and a kept epoch among them."""
    checked = _HISTORY(value, where)
    numbers = [e["epoch"] for e in checked["epochs"]]
    if numbers != list(range(1, len(numbers) + 1)):
        raise MetadataError(f"{where}.epochs: expected epochs 1, 2, 3, ... in order")
    if checked["best_epoch"] > len(numbers) or (numbers and checked["best_epoch"] < 1):
        raise MetadataError(
            f"{where}.best_epoch: {checked['best_epoch']} is not one of the "
            f"{len(numbers)} epochs recorded"
        )
    return checked


MODEL = record(
    {
        "format_version": (integer(0, MAX_COUNT), True),
        "sizes": (layer_sizes, True),
        "activation": (string(ACTIVATIONS), True),
        "output": (string(OUTPUTS), True),
        "loss": (string(LOSS_NAMES), False),
        "seed": (integer(-MAX_COUNT, MAX_COUNT), False),
        "history": (history, False),
        "test_accuracy": (number(0.0, 1.0), False),
        "config": (CONFIG, False),
        "train_seconds": (number(0.0, MAX_SETTING), False),
        "data": (string(), False),
        "kernel": (string(), False),
        "digitnet_version": (string(max_length=100), False),
        "input": (string(), False),
    },
    keep_others=True,
)

RNG = record(
    {
        "bit_generator": (string(("PCG64",)), True),
        "state": (
            record(
                {"state": (integer(0, 2**128 - 1), True), "inc": (integer(0, 2**128 - 1), True)},
                keep_others=False,
            ),
            True,
        ),
        "has_uint32": (integer(0, 1), True),
        "uinteger": (integer(0, 2**32 - 1), True),
    },
    keep_others=False,
)

CHECKPOINT = record(
    {
        "format_version": (integer(0, MAX_COUNT), True),
        "config": (CONFIG, True),
        "epoch": (integer(0, MAX_EPOCHS), True),
        "step": (integer(0, MAX_COUNT), True),
        "best_score": (number(-1.0, MAX_EPOCHS), True),
        "since_best": (integer(0, MAX_EPOCHS), True),
        "optimizer_steps": (integer(0, MAX_COUNT), True),
        "rng": (RNG, True),
        "history": (history, True),
    },
    keep_others=False,
)


def model_record(value: object) -> dict:
    """A model file's ``digitnet`` metadata, checked; MetadataError otherwise."""
    return MODEL(value, "")


def checkpoint_record(value: object) -> dict:
    """A checkpoint's ``digitnet_checkpoint`` metadata, checked, with the run's
    counters consistent with one another and with its config."""
    checked = CHECKPOINT(value, "")
    epoch, epochs = checked["epoch"], checked["config"].get("epochs", TrainConfig.epochs)
    recorded = len(checked["history"]["epochs"])
    if epoch > epochs:
        raise MetadataError(f"epoch: {epoch} is past the run's {epochs} epochs")
    if recorded != epoch:
        raise MetadataError(f"history: {recorded} epochs recorded for epoch {epoch}")
    if checked["since_best"] > epoch:
        raise MetadataError(f"since_best: {checked['since_best']} is more than epoch {epoch}")
    return checked
