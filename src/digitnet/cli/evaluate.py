"""``digitnet evaluate``: a model's accuracy on the test set (or on a folder's pair of
images and labels, ``files.data.load_scored``), per digit, and its confusion matrix."""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..files.data import load_scored
from ..files.modelfile import load
from ..train import evaluate
from .base import check_fits


def confusion_table(confusion: np.ndarray) -> str:
    """A (k, k) confusion matrix as text: rows the true digit, columns the guess."""
    k = len(confusion)
    lines = ["true\\guess " + "".join(f"{d:>6}" for d in range(k))]
    for t in range(k):
        lines.append(f"{t:>10} " + "".join(f"{n:>6}" for n in confusion[t]))
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    model = load(args.model)
    images, labels = load_scored(args.data)
    source = "the test images" if args.data is None else f"the images in {args.data}"
    check_fits(args.model, model.network, images, labels, source)
    result = evaluate(model.network, images, labels)
    if args.json:
        print(json.dumps({"model": str(args.model), **result.to_dict()}, allow_nan=False))
        return 0
    correct = round(result.accuracy * result.n)
    on = "test accuracy" if args.data is None else f"accuracy on {args.data}"
    print(f"{args.model}: {on} {result.accuracy:.2%} ({correct}/{result.n})")
    print("per digit: " + "  ".join(f"{d}: {a:.1%}" for d, a in enumerate(result.per_digit)))
    print("confusion matrix (rows: true digit, columns: the network's guess)")
    print(confusion_table(np.array(result.confusion)))
    return 0
