"""What the default network's neurons turn out to be, over several seeds.

    .venv/bin/python benchmarks/neurons.py [--seeds 0,1,2,3] [--models DIR] [--kernel numpy]
                                 [--epochs 40] [--out benchmarks/results/neurons.md]

Trains ``digitnet train --seed SEED`` (every other setting its default) for each seed, or
reads ``DIR/seedSEED.safetensors`` when it is already there, and measures on the 10,000
MNIST test images what the README's "What the neurons do" says to look for:

- first-layer neurons whose 20 largest weights (by |w|) are at least 14 negative;
- first-layer neurons whose 9 top test images are at least 8 of one digit;
- knock-outs: the least any hidden neuron costs, how many cost more than 1 point, the
  neuron that costs most (accuracy without it, and the digit it hurts most, before and
  after), and the most one layer-2 neuron costs one digit;
- "wants": the lowest activation a layer-2 neuron, and an output, reaches at its own;
- nudges of the first 10 test digits towards label + 1 and label + 5 (mod 10).

One model is one draw: the table is there to show how far these move between seeds.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np

from digitnet import load, load_mnist
from digitnet.inspect import explore
from digitnet.learn import knockout


def train(seed: int, out: Path, kernel: str, epochs: int) -> None:
    """``digitnet train`` with the defaults but the seed, the loop and the epochs."""
    command = [sys.executable, "-m", "digitnet", "train", "--seed", str(seed)]
    command += ["--kernel", kernel, "--epochs", str(epochs), "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def nudges(net, images: np.ndarray, labels: np.ndarray) -> tuple[int, int, float, float]:
    """Nudge the first 10 images towards label + 1 and label + 5: (flipped, tried,
    median L∞, median L2) over the nudges whose guess was not already the target."""
    guess = net.predict(images[:10])
    flipped, linf, l2, tried = 0, [], [], 0
    for i in range(10):
        for target in ((labels[i] + 1) % 10, (labels[i] + 5) % 10):
            if guess[i] == target:
                continue
            tried += 1
            try:
                done = explore.nudge(net, images[i] / 255, int(target))
            except explore.NudgeFailed:
                continue
            flipped += 1
            linf.append(done.linf)
            l2.append(done.l2)
    return flipped, tried, float(np.median(linf)), float(np.median(l2))


def measure(net, images: np.ndarray, labels: np.ndarray) -> dict[str, str]:
    """One row of the table for one network."""
    W1 = net.W[0]  # (16, 784)
    largest = np.argsort(-np.abs(W1), axis=1)[:, :20]
    negative = int(np.sum(np.sum(np.take_along_axis(W1, largest, axis=1) < 0, axis=1) >= 14))
    top, _ = explore.top_images(net, images)[0]  # (16, 9) indices
    pure = int(sum(np.bincount(labels[row], minlength=10).max() >= 8 for row in top))
    table = explore.knockout_table(net, images, labels)
    lost = 100 * (table.base_accuracy - table.accuracy)  # (32,) points
    worst = int(np.argmin(table.accuracy))
    digit = int(np.argmax(table.lost[worst]))
    layer2 = [r for r, (l, _) in enumerate(table.neurons) if l == 2]
    want2 = explore.wants(net, 2)
    reached2 = knockout.forward(net, want2).a[2][np.arange(len(want2)), np.arange(len(want2))]
    want3 = explore.wants(net, 3)
    out = knockout.forward(net, want3).a[3]
    reached3 = (out / out.sum(axis=1, keepdims=True))[np.arange(10), np.arange(10)]  # (10,)
    flipped, tried, linf, l2 = nudges(net, images, labels)
    (l, j) = table.neurons[worst]
    return {
        "test accuracy": f"{100 * table.base_accuracy:.2f}%",
        "layer-1 neurons mostly negative": f"{negative} of 16",
        "layer-1 neurons with 8 of 9 top images one digit": f"{pure} of 16",
        "least a hidden neuron costs": f"{lost.min():.1f} points",
        "hidden neurons costing over 1 point": f"{int(np.sum(lost > 1))} of {len(lost)}",
        "the costliest neuron": f"layer {l}, index {j}",
        "accuracy without it": f"{100 * table.accuracy[worst]:.1f}%",
        "the digit it hurts most": (
            f"{digit}s: {100 * table.base_per_digit[digit]:.0f}% to "
            f"{100 * table.per_digit[worst, digit]:.1f}%"
        ),
        "most one layer-2 neuron costs a digit": f"{100 * table.lost[layer2].max():.0f} points",
        "lowest layer-2 activation at its want": f"{reached2.min():.2f}",
        "output probability at its want, lowest / median": (
            f"{reached3.min():.2f} / {np.median(reached3):.2f}"
        ),
        "nudges that flipped the guess": f"{flipped} of {tried}",
        "median L∞ / L2 of a nudge": f"{linf:.2f} / {l2:.2f}",
    }


def machine() -> str:
    """The CPU, its cores and the BLAS that ran, in one phrase."""
    from threadpoolctl import threadpool_info

    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    blas = [f"{i['internal_api']} {i['version']}, {i.get('architecture')}"
            for i in threadpool_info() if i["user_api"] == "blas"]
    return f"{cpu}, {os.cpu_count()} cores ({'; '.join(blas)}), Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--models", type=Path, default=Path("neuron-models"))
    parser.add_argument("--kernel", default="numpy", choices=["numpy", "compiled", "auto"])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/neurons.md"))
    args = parser.parse_args()
    args.models.mkdir(parents=True, exist_ok=True)
    data = load_mnist()
    images, labels = data.test_images, data.test_labels
    rows = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        path = args.models / f"seed{seed}.safetensors"
        if not path.exists():
            train(seed, path, args.kernel, args.epochs)
        rows[seed] = measure(load(path).network, images, labels)
        print(f"seed {seed}: {rows[seed]}", flush=True)
    seeds = list(rows)
    lines = [
        f"What the default network's neurons turn out to be: `.venv/bin/digitnet train "
        f"--seed SEED --kernel {args.kernel}` ({args.epochs} epochs, every other setting its "
        f"default), measured {date.today()} on {machine()}, NumPy {np.__version__}, "
        "by `.venv/bin/python benchmarks/neurons.py`.",
        "",
        "| | " + " | ".join(f"seed {s}" for s in seeds) + " |",
        "| --- |" + " ---: |" * len(seeds),
    ]
    for key in rows[seeds[0]]:
        lines.append(f"| {key} | " + " | ".join(rows[s][key] for s in seeds) + " |")
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
