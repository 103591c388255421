"""What model and checkpoint files say about themselves, checked field by field.

A model file's ``digitnet`` metadata and a checkpoint's ``digitnet_checkpoint``
metadata are JSON written by digitnet, but a file can be damaged or made by hand.
Everything read from them passes through a schema here before it is used: each
field's type (a whole number is not a float, ``true`` is not a number), its range,
the names it may hold, how many entries a list may have, and no NaN or infinity
anywhere (so ``digitnet info --json`` always prints JSON).  Sizes are bounded
(``limits``) before anything the size describes is allocated, and error messages
quote at most a few dozen characters of what arrived.

The schemas of ``TrainConfig`` and ``Epoch`` are read from the dataclasses
themselves (their fields and annotations), so they follow those records.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable
from dataclasses import MISSING, fields

from .activations import ACTIVATIONS, LOSS_NAMES, OUTPUTS
from .config import KERNELS, SCHEDULES, Epoch, TrainConfig
from .limits import MAX_EPOCHS, MAX_LAYERS, MAX_SETTING, SizeError, check_network_size
from .optimizers import OPTIMIZERS

#: Longest metadata text read, in characters.
MAX_JSON_CHARS = 16 * 1024 * 1024
#: Deepest nesting of lists and objects in metadata.
MAX_DEPTH = 32
#: Longest list in metadata that is not an epoch list.
MAX_ITEMS = 100_000
#: Largest whole numbers in counters (steps, seeds): what a float64 holds exactly.
MAX_COUNT = 2**53
STOPPED = ("completed", "early-stopped", "interrupted")

Check = Callable[[object, str], object]


class MetadataError(ValueError):
    """Metadata that does not fit its schema; says where and what arrived."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 2, 4, 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40


def short(value: object, limit: int = 60) -> str:
    """``repr(value)``, abridged to ``limit`` characters: a bad value may be megabytes."""
    if isinstance(value, (list, dict)) and len(value) > 8:
        kind = "a list" if isinstance(value, list) else "an object"
        return f"{kind} of {len(value):,} entries"
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """Layer sizes: at least two whole numbers >= 1, within ``limits``."""
    if isinstance(value, list) and len(value) > MAX_LAYERS + 1:  # before reading them all
        raise MetadataError(f"{where}: {len(value):,} layer sizes: at most {MAX_LAYERS + 1}")
    if not isinstance(value, list) or not all(type(n) is int for n in value):
        raise MetadataError(f"{where}: expected a list of whole numbers, got {short(value)}")
    if len(value) < 2 or min(value) < 1:
        raise MetadataError(
            f"{where}: needs at least two sizes, each 1 or more, got {short(value)}"
        )
    try:
        check_network_size(value)
    except SizeError as e:
        raise MetadataError(f"{where}: {e}") from None
    return value


# -- the records -------------------------------------------------------------------------

#: The names each string field of TrainConfig may hold.
CHOICES: dict[str, object] = {
    "activation": ACTIVATIONS,
    "output": OUTPUTS,
    "loss": LOSS_NAMES,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "kernel": KERNELS,
}
#: Ranges of whole-number fields, where tighter than any count.
INT_RANGES: dict[str, tuple[int, int]] = {
    "epoch": (1, MAX_EPOCHS),
    "epochs": (1, MAX_EPOCHS),
    "batch_size": (1, 2**31 - 1),
    "augment": (0, 2**31 - 1),
    "validation": (0, 2**31 - 1),
    "patience": (0, MAX_EPOCHS),
}
#: Ranges of number fields, where they have one.
FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "val_accuracy": (0.0, 1.0),
    "lr": (0.0, MAX_SETTING),
    "momentum": (0.0, 1.0),
    "weight_decay": (0.0, MAX_SETTING),
    "seconds": (0.0, MAX_SETTING),
    "loss": (0.0, MAX_SETTING),
    "val_loss": (0.0, MAX_SETTING),
}


def field_check(name: str, annotation: str) -> Check | None:
    """The check for a dataclass field from its name and annotation, or None for an
    annotation this module does not know (a test keeps that list empty)."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if base == "tuple[int, ...]":
        check = layer_sizes
    elif base == "str":
        check = string(CHOICES.get(name))
    elif base == "bool":
        check = boolean
    elif base == "int":
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


#: TrainConfig's fields; keys it does not know are kept (``TrainConfig.from_dict``
#: ignores them), so files from other versions stay readable.
CONFIG = record(dataclass_schema(TrainConfig, all_required=False), keep_others=True)


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
