"""digitnet against its peers, measured side by side in one run on this machine.

    python benchmarks/bench.py [--epochs 3] [--rounds 3] [--out benchmarks/results]
    python benchmarks/bench.py --smoke        # a tiny budget, to check the script runs

Measures, for the 784-16-16-10 sigmoid network on MNIST (cross-entropy, Adam):
- seconds per epoch over the 60,000 training images at batch 10, 32 and 128 (median
  of several epochs) for digitnet, PyTorch CPU (in-memory tensors, no DataLoader) and
  scikit-learn's MLPClassifier, all with one BLAS/intra-op thread.  The contenders
  take turns, in ``--rounds`` rounds of ``--epochs`` epochs each (the first epoch of
  each turn is a warm-up and not counted), so that a slow spell of a shared machine
  falls on all of them rather than on whoever happened to be running;
- wall time from process start to a saved model for the default ``digitnet train``,
  and for the same recipe in PyTorch and (as close as it allows) scikit-learn, with
  the test accuracy each reached and the peak memory of each process;
- seconds per epoch at batch 32 for every activation, output, cost and optimiser of the
  registries, one at a time in the default network, on each loop (NumPy, compiled, and
  ``auto`` once the compiled loop is built);
- predicting the 10,000 test images in one call, and one image;
- the arithmetic floor: an epoch's matrix-product FLOPs over this machine's one-core
  float32 GEMM rate, and each loop's distance from it ("x floor").

Writes ``bench.md`` (a Markdown table) and ``bench.png`` to ``--out``.  Nothing here
is a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from digitnet.files.data import load_mnist
from digitnet.files.modelfile import load
from digitnet.learn.activations import ACTIVATIONS, LOSS_NAMES, OUTPUTS
from digitnet.learn.kernel import AVAILABLE as KERNEL_AVAILABLE
from digitnet.learn.network import Network
from digitnet.learn.optimizers import OPTIMIZERS
from digitnet.train import TrainConfig, evaluate, train_network

HERE = Path(__file__).resolve().parent
SIZES = (784, 16, 16, 10)
LR = 0.002


def have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# -- seconds per epoch --------------------------------------------------------------------


def digitnet_epochs(
    images, labels, batch: int, epochs: int, kernel: str = "numpy", **settings
) -> list[float]:
    """Seconds of each epoch of the default network at this batch size on this loop,
    with ``settings`` (activation, output, loss, optimizer) changed."""
    config = TrainConfig(
        batch_size=batch,
        epochs=epochs,
        validation=0,
        augment=0,
        distort=0,
        lr=LR,
        schedule="constant",
        weight_decay=0,
        kernel=kernel,
        **settings,
    )
    _, history = train_network(images, labels, config)
    return [e.seconds for e in history.epochs]


def compiled_epochs(images, labels, batch: int, epochs: int, **settings) -> list[float]:
    digitnet_epochs(images[:64], labels[:64], batch, 1, "compiled", **settings)  # compile first
    return digitnet_epochs(images, labels, batch, epochs, "compiled", **settings)


def variants() -> dict[str, dict[str, str]]:
    """The default network (sigmoid, softmax, cross-entropy, Adam) with one setting
    changed: every activation, every output with every cost, every optimiser."""
    out = {name: {"activation": name} for name in ACTIVATIONS}
    out |= {
        f"{output} output, {loss}": {"output": output, "loss": loss}
        for output in OUTPUTS
        for loss in LOSS_NAMES
        if (output, loss) != ("softmax", "cross-entropy")
    }
    return out | {name: {"optimizer": name} for name in OPTIMIZERS if name != "adam"}


def variant_epochs(images, labels, epochs: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median seconds per epoch at batch 32 for each of ``variants``, on each loop:
    NumPy, compiled, and ``auto`` once the compiled loop is built (which it then takes);
    the loops take turns, as the contenders do."""
    loops = {
        "numpy": lambda v: digitnet_epochs(images, labels, 32, epochs, "numpy", **v),
        "compiled": lambda v: compiled_epochs(images, labels, 32, epochs, **v),
        "auto": lambda v: digitnet_epochs(images, labels, 32, epochs, "auto", **v),
    }
    counted = {name: {loop: [] for loop in loops} for name in variants()}
    for turn in range(rounds):
        for name, settings in variants().items():
            for loop, run in loops.items():
                counted[name][loop] += run(settings)[1:]
                print(f"round {turn + 1}/{rounds} {name} {loop}: "
                      f"{counted[name][loop][-1]:.3f} s/epoch", flush=True)  # fmt: skip
    return {a: {loop: float(np.median(t)) for loop, t in c.items()} for a, c in counted.items()}


def torch_model():
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(784, 16),
        torch.nn.Sigmoid(),
        torch.nn.Linear(16, 16),
        torch.nn.Sigmoid(),
        torch.nn.Linear(16, 10),
    )


def torch_epochs(images, labels, batch: int, epochs: int) -> list[float]:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    X, Y = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    model = torch_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(X))
        for s in range(0, len(X), batch):
            idx = order[s : s + batch]
            x = X[idx].float().mul_(1 / 255)
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), Y[idx]).backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def sklearn_epochs(images, labels, batch: int, epochs: int) -> list[float]:
    from sklearn.neural_network import MLPClassifier

    X = images.astype(np.float32) / 255
    clf = MLPClassifier(
        hidden_layer_sizes=(16, 16),
        activation="logistic",
        solver="adam",
        batch_size=batch,
        learning_rate_init=LR,
        alpha=0,
        random_state=0,
    )
    times = []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(epochs):
            start = time.perf_counter()
            clf.partial_fit(X, labels, classes=np.arange(10))  # one pass over the data
            times.append(time.perf_counter() - start)
    return times


# -- whole runs, each in its own process ----------------------------------------------------


def run_process(command: list[str], env: dict | None = None) -> dict:
    """Run a command; its wall time, peak memory (MB, from /usr/bin/time: a forked
    child's own max RSS would count the pages of this process) and the JSON it
    prints last."""
    timer = Path("/usr/bin/time")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [str(timer), "-f", "%M", "-o", rss.name, *command] if timer.exists() else command
        start = time.perf_counter()
        result = subprocess.run(wrapped, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{command} exited {result.returncode}: {result.stderr[-2000:]}")
        peak = int(rss.read().split()[-1]) / 1024 if timer.exists() else float("nan")
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return {"wall": wall, "peak_mb": peak, **(json.loads(last) if last.startswith("{") else {})}


def recipe_torch(epochs: int) -> dict:
    """The default digitnet recipe in PyTorch: sigmoid 16-16, softmax cross-entropy,
    Adam lr 0.02 on a per-step cosine, L2 1e-4 on weights, batch 32, one-pixel shifts,
    5,000 validation images choosing the best epoch."""
    import torch

    torch.set_num_threads(1)
    data = load_mnist()
    config = TrainConfig(epochs=epochs)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data.train_images))
    val, tr = order[: config.validation], order[config.validation :]
    X = torch.from_numpy(data.train_images)
    Y = torch.from_numpy(data.train_labels.astype(np.int64))
    model = torch_model()
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    optimizer = torch.optim.Adam(
        [
            {"params": weights, "weight_decay": config.weight_decay},
            {"params": biases, "weight_decay": 0},
        ],
        lr=config.lr,
    )
    steps = -(-len(tr) // config.batch_size) * config.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 0.5 * (1 + np.cos(np.pi * t / steps))
    )
    xv = X[val].float() / 255
    best, best_state = -1.0, None
    moves = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    for _ in range(config.epochs):
        perm = torch.from_numpy(tr[rng.permutation(len(tr))])
        for s in range(0, len(perm), config.batch_size):
            idx = perm[s : s + config.batch_size]
            x = X[idx].float().mul_(1 / 255).view(-1, 28, 28)
            dy, dx = moves[rng.integers(5)]
            if dy or dx:
                x = torch.roll(x, (dy, dx), (1, 2))
                if dy:
                    x[:, 0 if dy > 0 else -1, :] = 0
                if dx:
                    x[:, :, 0 if dx > 0 else -1] = 0
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x.reshape(-1, 784)), Y[idx]).backward()
            optimizer.step()
            schedule.step()
        with torch.inference_mode():
            accuracy = (model(xv).argmax(1) == Y[val]).float().mean().item()
        if accuracy > best:
            best, best_state = accuracy, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    with torch.inference_mode():
        xt = torch.from_numpy(data.test_images).float() / 255
        test = (model(xt).argmax(1).numpy() == data.test_labels).mean()
    return {"accuracy": float(test)}


def recipe_sklearn(epochs: int) -> dict:
    """The closest scikit-learn allows: logistic 16-16, Adam lr 0.02 (no cosine, no
    shifts), L2 matching 1e-4 per weight (alpha = 1e-4 x batch), batch 32."""
    from sklearn.neural_network import MLPClassifier

    data = load_mnist()
    config = TrainConfig(epochs=epochs)
    clf = MLPClassifier(
        hidden_layer_sizes=(16, 16),
        activation="logistic",
        solver="adam",
        batch_size=config.batch_size,
        learning_rate_init=config.lr,
        alpha=config.weight_decay * config.batch_size,
        max_iter=config.epochs,
        early_stopping=True,
        validation_fraction=config.validation / 60_000,
        n_iter_no_change=config.epochs,
        random_state=config.seed,
    )
    import warnings

    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(data.train_images.astype(np.float32) / 255, data.train_labels)
    test = clf.score(data.test_images.astype(np.float32) / 255, data.test_labels)
    return {"accuracy": float(test)}


# -- prediction and the floor ------------------------------------------------------------


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def prediction_times(net: Network, images: np.ndarray, single: int) -> dict:
    x = images.astype(np.float32) / 255
    out = {}
    with threadpool_limits(limits=1, user_api="blas"):
        out["digitnet_batch"] = median_time(lambda: net.forward(x), 7)
        one = x[0]
        out["digitnet_one"] = median_time(lambda: net.forward(one), single)
    if have("torch"):
        import torch

        torch.set_num_threads(1)
        model = torch_model()
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            out["torch_batch"] = median_time(lambda: torch.softmax(model(xt), 1), 7)
            t1 = xt[:1]
            out["torch_one"] = median_time(lambda: torch.softmax(model(t1), 1), single)
    return out


def gemm_rate(threads: int, sizes: tuple[int, ...] = (512, 1024, 2048)) -> float:
    """float32 GEMM, GFLOP/s, with this many BLAS threads: the best of square products
    of these sizes (median of 5 each), so the floor it gives is the lowest."""
    rates = []
    for n in sizes:
        a = np.random.default_rng(0).random((n, n), dtype=np.float32)
        with threadpool_limits(limits=threads, user_api="blas"):
            a @ a
            rates.append(2 * n**3 / median_time(lambda a=a: a @ a, 5) / 1e9)
    return max(rates)


def machine() -> str:
    """The processor's name, as ``lscpu`` gives it (else /proc/cpuinfo), and whether
    it has AVX-512: two machines both called "AMD EPYC" may differ by that, and
    OpenBLAS picks its kernels by it."""
    name = _processor()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return name
    return f"{name} with AVX-512" if " avx512f" in flags else f"{name} without AVX-512"


def _processor() -> str:
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
        for line in listing.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas() -> str:
    """NumPy's BLAS and the kernels it chose for this processor (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    pools.sort(key=lambda p: "numpy" not in p.get("filepath", ""))  # NumPy's own first
    for p in pools:
        return f"{p.get('internal_api')} {p.get('version')}, {p.get('architecture')} kernels"
    return "unknown BLAS"


def flops_per_epoch(n: int) -> float:
    """Forward 2·Σ n_in·n_out, weight gradients as much again, and δ passed back
    through every layer but the first, per image."""
    pairs = list(zip(SIZES[:-1], SIZES[1:], strict=False))
    forward = 2 * sum(a * b for a, b in pairs)
    back = 2 * sum(a * b for a, b in pairs[1:])
    return n * (2 * forward + back)


# -- the report ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs a turn, the first a warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="turns per contender and batch size")
    parser.add_argument("--recipe-epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--seeds", type=int, default=4, help="seeds of the default run, each loop")
    parser.add_argument("--smoke", action="store_true", help="tiny budget: check the script")
    parser.add_argument("--recipe", choices=["torch", "sklearn"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.recipe:  # a child process timed from its start
        fn = recipe_torch if args.recipe == "torch" else recipe_sklearn
        print(json.dumps(fn(args.recipe_epochs)))
        return 0

    data = load_mnist()
    images, labels = data.train_images, data.train_labels
    batches, epochs, rounds = (10, 32, 128), max(args.epochs, 2), args.rounds
    recipe_epochs = args.recipe_epochs
    if args.smoke:  # 3,000 images, batch 32, one turn of two epochs, a one-epoch recipe
        images, labels, batches = images[:3000], labels[:3000], (32,)
        epochs, rounds, recipe_epochs, args.seeds = 2, 1, 1, 1
    peers = {"digitnet": digitnet_epochs}
    if KERNEL_AVAILABLE:
        peers["digitnet compiled"] = compiled_epochs
    if have("torch"):
        peers["PyTorch"] = torch_epochs
    if have("sklearn"):
        peers["scikit-learn"] = sklearn_epochs
    counted: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batches} for name in peers}
    for turn in range(rounds):
        names = list(peers)
        names = names[turn % len(names) :] + names[: turn % len(names)]  # who goes first rotates
        for batch in batches:
            for name in names:
                times = peers[name](images, labels, batch, epochs)
                counted[name][batch] += times[1:]
                print(
                    f"round {turn + 1}/{rounds} {name:17s} batch {batch:4d}: "
                    + " ".join(f"{t:.3f}" for t in times[1:])
                    + " s/epoch",
                    flush=True,
                )
    per_epoch = {name: {b: float(np.median(counted[name][b])) for b in batches} for name in peers}
    measured = len(counted[next(iter(peers))][batches[0]])
    by_variant = variant_epochs(images, labels, epochs, rounds) if KERNEL_AVAILABLE else {}

    runs, seeds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.safetensors"
        command = [sys.executable, "-m", "digitnet", "train", "--quiet", "--out", str(model)]
        if args.smoke:
            command += ["--epochs", "1"]
        cold = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "cold")}
        warm = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "warm")}
        if args.smoke and os.environ.get("NUMBA_CACHE_DIR"):
            # a smoke run checks the script, not the compiler: it reuses the cache it was
            # given (the test suite's), where the loop may be built already
            warm = dict(os.environ)
        # (name, loop, environment): an empty compile cache, then the one it filled
        kinds = [("digitnet (NumPy)", "numpy", None)]
        if KERNEL_AVAILABLE:
            kinds += [
                ("digitnet auto, nothing compiled yet", "auto", cold),
                ("digitnet compiled, compiling first", "compiled", warm),
                ("digitnet compiled, compiled before", "compiled", warm),
                ("digitnet auto, compiled before", "auto", warm),
            ]
        for name, loop, env in kinds:
            runs[name] = run_process([*command, "--kernel", loop], env)
            runs[name]["accuracy"] = load(model).test_accuracy
            runs[name]["kernel"] = load(model).info.get("kernel")
        net = load(model).network
        for loop in ["numpy"] + (["compiled"] if KERNEL_AVAILABLE else []):
            seeds[loop] = []
            for seed in range(args.seeds):
                run_process([*command, "--kernel", loop, "--seed", str(seed)], warm)
                seeds[loop].append(load(model).test_accuracy)
                print(f"seed {seed} {loop}: {seeds[loop][-1]:.2%}", flush=True)
    for name, recipe in (("PyTorch", "torch"), ("scikit-learn", "sklearn")):
        if name in peers:
            runs[name] = run_process(
                [
                    sys.executable,
                    __file__,
                    "--recipe",
                    recipe,
                    "--recipe-epochs",
                    str(recipe_epochs),
                ]
            )
    for name, r in runs.items():
        print(
            f"{name:13s} whole run: {r['wall']:.1f} s, test {r['accuracy']:.2%}, "
            f"peak {r['peak_mb']:.0f} MB",
            flush=True,
        )

    predict = prediction_times(net, data.test_images, 200 if args.smoke else 10_000)
    rate1, rate2 = gemm_rate(1), gemm_rate(2)
    print(f"{machine()}, {blas()}: GEMM {rate1:.0f} / {rate2:.0f} GFLOP/s", flush=True)
    flops = flops_per_epoch(len(images))
    floor = flops / (rate1 * 1e9)  # every loop here runs on one core
    check = evaluate(net, data.test_images, data.test_labels).accuracy

    rivals = [p for p in peers if not p.startswith("digitnet")]
    lines = [
        f"Measured {date.today().isoformat()} on {machine()}, {os.cpu_count()} cores "
        f"(BLAS: {blas()}; float32 GEMM {rate1:.0f} GFLOP/s on one core, {rate2:.0f} on two; "
        f"load average {os.getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}, NumPy {np.__version__}"
        + (f", PyTorch {__import__('torch').__version__}" if "PyTorch" in peers else "")
        + (f", scikit-learn {__import__('sklearn').__version__}" if "scikit-learn" in peers else "")
        + ". One BLAS / intra-op thread for every contender.",
        "",
        f"Seconds per epoch over {len(images):,} training images (784-16-16-10 sigmoid, "
        "cross-entropy, Adam; \"digitnet\" is the NumPy path, \"digitnet compiled\" the same loop "
        f"compiled by numba (the `fast` extra); median of {measured} epochs, taken in "
        f"{rounds} turns of {epochs - 1} after a warm-up, the contenders taking turns"
        f"{' — SMOKE RUN on 3,000 images' if args.smoke else ''}):",
        "",
        "| batch | "
        + " | ".join(peers)
        + " | "
        + " | ".join(f"fastest digitnet vs {p}" for p in rivals)
        + " | fastest digitnet x floor |",
        "| ---: |" + " ---: |" * (len(peers) + len(rivals) + 1),
    ]
    for batch in batches:
        ours = min(t[batch] for p, t in per_epoch.items() if p.startswith("digitnet"))
        lines.append(
            f"| {batch} | "
            + " | ".join(f"{per_epoch[p][batch]:.3f} s" for p in peers)
            + " | "
            + " | ".join(
                f"{per_epoch[p][batch] / ours:.1f}x faster"
                for p in peers
                if not p.startswith("digitnet")
            )
            + f" | {ours / floor:.2f}x |"
        )
    lines += [
        "",
        f"Whole run, process start to saved model ({recipe_epochs} epochs of the default "
        "recipe; scikit-learn without the cosine schedule and the shifts it lacks):",
        "",
        "| | wall time | test accuracy | peak memory | loop that ran |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, r in runs.items():
        lines.append(
            f"| {name} | {r['wall']:.1f} s | {r['accuracy']:.2%} | {r['peak_mb']:.0f} MB "
            f"| {r.get('kernel') or '-'} |"
        )
    lines += [
        "",
        "A compile cache that is empty, as on a fresh install, and then warm: `auto` never "
        "waits for the compiler (it trains with NumPy until the loop is built, and starts "
        "building it in the background for the runs after); `--kernel compiled` compiles first.",
        "",
        f"Test accuracy of the default `digitnet train` over seeds 0-{args.seeds - 1} "
        "(the loops agree to float32 rounding per step; after 40 epochs different "
        "rounding ends in different minima):",
        "",
        "| loop | " + " | ".join(f"seed {i}" for i in range(args.seeds)) + " | min - max |",
        "| --- |" + " ---: |" * (args.seeds + 1),
    ]
    for loop, accuracies in seeds.items():
        lines.append(
            f"| {loop} | "
            + " | ".join(f"{a:.2%}" for a in accuracies)
            + f" | {min(accuracies):.2%} - {max(accuracies):.2%} |"
        )
    lines += [
        "",
        "Prediction (median):",
        "",
        "| | 10,000 test images, one call | one image |",
        "| --- | ---: | ---: |",
        f"| digitnet | {predict['digitnet_batch'] * 1e3:.2f} ms | "
        f"{predict['digitnet_one'] * 1e6:.1f} µs |",
    ]
    if "torch_batch" in predict:
        lines.append(
            f"| PyTorch | {predict['torch_batch'] * 1e3:.2f} ms | "
            f"{predict['torch_one'] * 1e6:.1f} µs |"
        )
        lines.append(
            f"| digitnet vs PyTorch | {predict['torch_batch'] / predict['digitnet_batch']:.2f}x "
            f"faster | {predict['torch_one'] / predict['digitnet_one']:.2f}x faster |"
        )
    lines += variant_lines(by_variant, floor)
    lines += [
        "",
        f"The floor: an epoch is {flops / 1e9:.2f} GFLOP of matrix products; float32 GEMM "
        f"runs at {rate1:.0f} GFLOP/s on one core (the best of 512², 1024² and 2048²), so "
        f"an epoch on one core cannot take less than {floor * 1e3:.1f} ms. "
        + " ".join(
            f"The fastest digitnet at batch {b}: {_fastest(per_epoch, b) * 1e3:.0f} ms, "
            f"{_fastest(per_epoch, b) / floor:.2f}x the floor."
            for b in batches
            if b >= 32
        ),
        f"(The model timed for prediction scored {check:.2%} on the test set.)",
    ]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    name = "bench-smoke" if args.smoke else "bench"
    (args.out / f"{name}.md").write_text(text)
    plot(per_epoch, batches, args.out / f"{name}.png")
    print(text)
    return 0


def _fastest(per_epoch: dict, batch: int) -> float:
    """The fastest digitnet loop's seconds per epoch at this batch size."""
    return min(t[batch] for p, t in per_epoch.items() if p.startswith("digitnet"))


def variant_lines(by_variant: dict, floor: float) -> list[str]:
    """The table of seconds per epoch for each of ``variants``, on each loop."""
    if not by_variant:
        return []
    base = by_variant["sigmoid"]["compiled"]
    lines = [
        "",
        "Every activation, output, cost and optimiser, one at a time in the default network "
        "(sigmoid, softmax, cross-entropy, Adam), one epoch at batch 32 (median, the loops "
        "taking turns; `auto` with the compiled loop built, which it then takes):",
        "",
        "| changed | NumPy | compiled | auto | compiled vs the default compiled "
        "| auto vs the faster loop | compiled x floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t in by_variant.items():
        faster = min(t["numpy"], t["compiled"])
        shown = "nothing (sigmoid)" if name == "sigmoid" else name
        lines.append(
            f"| {shown} | {t['numpy']:.3f} s | {t['compiled']:.3f} s | {t['auto']:.3f} s | "
            f"{t['compiled'] / base:.2f}x | {t['auto'] / faster:.2f}x | "
            f"{t['compiled'] / floor:.2f}x |"
        )
    return lines


def plot(per_epoch: dict, batches, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(per_epoch)
    colours = {
        "digitnet": "#f5b700",
        "digitnet compiled": "#b07d00",
        "PyTorch": "#ee4c2c",
        "scikit-learn": "#3499cd",
    }
    for i, (name, times) in enumerate(per_epoch.items()):
        xs = np.arange(len(batches)) + (i - (len(per_epoch) - 1) / 2) * width
        bars = ax.bar(xs, [times[b] for b in batches], width, label=name, color=colours.get(name))
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
    ax.set_ylabel("seconds per epoch (MNIST's 60,000 images)")
    ax.set_title("Training 784-16-16-10 on MNIST, one thread each (lower is better)")
    ax.legend()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
