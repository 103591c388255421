"""``digitnet predict``: the digit in each picture, and optionally the 28x28 input the
network saw."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..files.modelfile import load
from ..files.paths import OutputError, check_output
from ..vision.preprocess import PictureError
from .base import EXIT_USAGE, UsageError, check_pictures


def _input_png(pixels: np.ndarray) -> bytes:
    """A (28, 28) picture of values in [0, 1] as PNG bytes."""
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _save_input_plan(args: argparse.Namespace) -> dict[int, Path]:
    """Where --save-input puts each picture's 28x28 input (DIR/NAME.png, NAME-2.png
    for a repeated name), every path checked before any picture is read: none may be
    one of this command's inputs (the pictures themselves, the model)."""
    folder = args.save_input
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--save-input {folder}: exists and is not a folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--save-input {folder}: cannot make the folder ({e.strerror})") from None
    plan, used = {}, set()
    try:
        for i, path in enumerate(args.images):
            name, n = f"{path.stem}.png", 1
            while name in used:
                n += 1
                name = f"{path.stem}-{n}.png"
            used.add(name)
            plan[i] = check_output(
                folder / name, inputs=[args.model, *args.images], what="--save-input"
            )
    except OutputError:
        if created:
            folder.rmdir()
        raise
    return plan


def cmd_predict(args: argparse.Namespace) -> int:
    from ..files.paths import atomic_write
    from ..vision.recognise import predict_image

    net = load(args.model).network
    check_pictures(args.model, net)
    saved = _save_input_plan(args) if args.save_input is not None else {}
    results, failed = [], 0
    for i, path in enumerate(args.images):
        try:
            prediction = predict_image(net, path)
        except PictureError as e:
            failed += 1
            results.append({"file": str(path), "error": str(e)})
            print(f"digitnet predict: error: {e}", file=sys.stderr)
            continue
        result = {
            "file": str(path),
            "digit": prediction.digit,
            "confidence": prediction.confidence,
            "probabilities": prediction.probabilities,
            "top3": [{"digit": d, "probability": p} for d, p in prediction.top(3)],
        }
        if i in saved:
            atomic_write(saved[i], _input_png(prediction.input))
            result["input_file"] = str(saved[i])
        results.append(result)
        if not args.json:
            top = ", ".join(f"{d} {p:.1%}" for d, p in prediction.top(3))
            print(f"{path}: {prediction.digit} ({prediction.confidence:.1%})   top 3: {top}")
    if args.json:
        print(json.dumps(results, allow_nan=False))
    return EXIT_USAGE if failed else 0
