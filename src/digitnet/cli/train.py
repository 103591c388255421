"""``digitnet train``: check every output first, then train, evaluate, record and save
through ``service``, reporting each epoch; checkpoints, ``--resume``, and Ctrl-C
keeping the best model so far."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .. import service
from ..config import Epoch, TrainConfig
from ..files.data import FILES, PAIR, Dataset, load_mnist, load_pair, with_added
from ..files.modelfile import expected_bytes
from ..files.paths import OutputError, check_output, same_file
from ..limits import check_training_size
from ..settings import SETTINGS
from ..train import is_compiled, resolve_kernel
from .base import EXIT_INTERRUPTED, UsageError, option


def cmd_train(args: argparse.Namespace) -> int:
    from ..files.checkpoint import load_checkpoint

    if args.recipe is not None:
        return train_recipe(args)
    resume = None
    if args.resume is not None:
        _refuse_changes_on_resume(args.given)
        resume, config = load_checkpoint(args.resume)
        if "kernel" in args.given:  # the same arithmetic either way, to float32 rounding
            config = replace(config, kernel=args.kernel)
        if not args.quiet:
            print(
                f"resuming {args.resume} after epoch {resume.epoch} of {config.epochs}, "
                "with the settings it was started with"
            )
    else:
        config = TrainConfig(**{name: getattr(args, name) for name in SETTINGS})
    checkpoint, every = _checkpoint_plan(args)
    added = _added(args)
    return train_and_save(
        config,
        args.out,
        args.data,
        args.quiet,
        resume=resume,
        checkpoint=checkpoint,
        checkpoint_every=every,
        inputs=[args.resume] if args.resume is not None else [],
        added=added,
    )


def train_recipe(args: argparse.Namespace) -> int:
    """``digitnet train --recipe NAME``: the named recipe (``digitnet.recipes``) from
    ``--seed``, scored on the test set once and saved to ``--out``.  Its settings are the
    recipe's: other training flags are refused, not ignored."""
    from .. import recipes

    recipe = recipes.RECIPES[args.recipe]
    own = {"resume", "checkpoint", "checkpoint_every", "add", "add_weight"}
    refused = sorted(args.given & (set(SETTINGS) | own) - {"seed", "kernel", "recipe"})
    if refused:
        flags = ", ".join(option(name) for name in refused)
        raise UsageError(
            f"--recipe {recipe.name} sets the training itself; {flags} cannot change it"
        )
    config = replace(recipe.student, seed=args.seed, kernel=args.kernel)
    recipe = replace(recipe, student=config, teacher=recipe.teacher and replace(
        recipe.teacher, kernel=args.kernel))
    _check_outputs(config, args.out, None, args.data, [])
    data = load_mnist(args.data)
    _check_data(config, data)
    progress = Progress(config, args.quiet, None, 0)
    progress.say(f"recipe {recipe.name}: {recipe.summary}; seed {args.seed}")
    try:
        run = recipes.train(recipe, data, args.seed, on_stage=progress.say,
                            on_epoch=lambda e, n: progress.say(epoch_line(e, n), flush=True),
                            data_name="MNIST" if args.data is None else str(args.data))
    except KeyboardInterrupt:
        print("interrupted before the student trained: no model saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _finish(run, config, args.out, None, progress)


def _added(args: argparse.Namespace) -> tuple[Path, object, object, int] | None:
    """--add DIR read (every file checked) before any work: (DIR, images (M, 784),
    labels (M,), --add-weight), or None."""
    if args.add is None:
        if "add_weight" in args.given:
            raise UsageError("--add-weight needs --add DIR (the images to show K times an epoch)")
        return None
    images, labels = load_pair(args.add)
    return args.add, images, labels, args.add_weight


def _refuse_changes_on_resume(given: set[str]) -> None:
    """--resume continues a run exactly: the settings that shape it come from the
    checkpoint, so flags that would change them are refused, not ignored.  (--kernel
    may change: both loops compute the same steps.)"""
    changed = sorted(given & (set(SETTINGS) - {"kernel"}))
    if changed:
        flags = ", ".join(option(name) for name in changed)
        raise UsageError(
            f"--resume continues the run with the settings it was started with; "
            f"{flags} cannot change them (start a new run to train differently)"
        )


def _checkpoint_plan(args: argparse.Namespace) -> tuple[Path | None, int]:
    """(checkpoint path or None, every how many epochs): --checkpoint alone means
    every epoch; --checkpoint with an explicit --checkpoint-every 0 is a contradiction."""
    every = args.checkpoint_every
    if args.checkpoint is not None and every == 0:
        if "checkpoint_every" in args.given:
            raise UsageError(
                "--checkpoint with --checkpoint-every 0 would save nothing; "
                "give N >= 1 or leave out --checkpoint"
            )
        every = 1
    if not every:
        return None, 0
    return args.checkpoint or args.out.with_name(args.out.stem + ".ckpt.safetensors"), every


def _check_outputs(
    config: TrainConfig,
    out: Path,
    checkpoint: Path | None,
    data_dir: Path | None,
    inputs: Sequence[Path],
) -> None:
    """Before any work: the model's and the checkpoint's paths can be written and hold
    no input of the run (``files.check_output``)."""
    from ..files.checkpoint import checkpoint_bytes

    data_files = []
    if data_dir is not None:
        data_files = [data_dir / f"{name}{gz}" for name in FILES.values() for gz in ("", ".gz")]
    check_output(
        out, inputs=[*inputs, *data_files], size=expected_bytes(config.sizes), what="--out"
    )
    if checkpoint is not None:
        if same_file(out, checkpoint):
            raise UsageError(f"--checkpoint {checkpoint} and --out {out} are the same file")
        # (a resumed run may go on saving to the checkpoint it started from)
        check_output(
            checkpoint, inputs=data_files, size=checkpoint_bytes(config), what="--checkpoint"
        )


def _check_data(config: TrainConfig, data: Dataset) -> None:
    """The network reads these images, has an output per class, and fits in memory."""
    pixels = data.train_images.shape[1]
    if config.sizes[0] != pixels:
        raise UsageError(
            f"--sizes starts with {config.sizes[0]} inputs but the images have {pixels} pixels"
        )
    n_classes = int(data.train_labels.max()) + 1
    if config.sizes[-1] < n_classes:
        raise UsageError(f"--sizes ends with {config.sizes[-1]} outputs for {n_classes} classes")
    n_train = len(data.train_images) - config.validation
    if n_train > 0:
        check_training_size(config.sizes, config.batch_size, n_train, config.validation)


def _choose_loop(config: TrainConfig, say) -> str:
    """The loop that trains, said in a line when it is not the obvious one: the
    compiled loop is compiled in the foreground when asked for, or, under ``auto``, in
    the background for the next run while this one trains with NumPy."""
    from ..train import BACKGROUND

    builds = len(BACKGROUND)
    loop = resolve_kernel(config, build=True)
    if loop == "compiled" and config.kernel == "compiled" and not is_compiled(config):
        say("compiling the training loop for this configuration (numba; once, about a minute)")
    elif len(BACKGROUND) > builds:
        say(
            "training with NumPy; the compiled loop is being built in the background "
            "(numba, about a minute), for the runs after this one"
        )
    return loop


def epoch_line(record: Epoch, epochs: int) -> str:
    val = "" if record.val_accuracy is None else f"  val {record.val_accuracy:7.2%}"
    return (
        f"epoch {record.epoch:>{len(str(epochs))}}/{epochs}  loss {record.loss:.4f}  "
        f"train {record.accuracy:7.2%}{val}  lr {record.lr:.2e}  {record.seconds:.2f}s"
    )


class Progress:
    """What a run says as it goes: a progress bar within each epoch (on stderr), a
    line per epoch, and a checkpoint every ``every`` epochs (one warning, and training
    goes on, when one cannot be written; ``unsaved`` lists their epochs)."""

    def __init__(self, config: TrainConfig, quiet: bool, checkpoint: Path | None, every: int):
        self.config, self.quiet, self.checkpoint, self.every = config, quiet, checkpoint, every
        self.bar = None
        self.unsaved: list[int] = []

    def say(self, *args, **kwargs) -> None:
        if not self.quiet:
            print(*args, **kwargs)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_batch(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            disable = True if self.quiet else None
            self.bar = tqdm(total=total, unit="img", unit_scale=True, leave=False,
                            disable=disable, file=sys.stderr)  # fmt: skip
        self.bar.update(done - self.bar.n)

    def on_epoch(self, epoch: Epoch) -> None:
        self.close_bar()
        self.say(epoch_line(epoch, self.config.epochs), flush=True)

    def on_state(self, state) -> None:
        from ..files.checkpoint import save_checkpoint

        if state.epoch % self.every and state.epoch != self.config.epochs:
            return
        try:
            save_checkpoint(self.checkpoint, state, self.config)
        except (OutputError, OSError) as e:
            if not self.unsaved:
                self.close_bar()
                print(f"warning: checkpoint not saved ({e}); training goes on", file=sys.stderr)
            self.unsaved.append(state.epoch)


def train_and_save(
    config: TrainConfig,
    out: Path,
    data_dir: Path | None,
    quiet: bool,
    *,
    resume=None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 0,
    inputs: Sequence[Path] = (),
    keep_interrupted: bool = True,
    added: tuple[Path, object, object, int] | None = None,
) -> int:
    """Train as ``config`` says, report each epoch, save to ``out``; an exit code.

    Output paths and sizes are checked before anything is loaded; a checkpoint that
    cannot be written is a warning, not the end of the run; an interrupted run saves
    the best model so far unless ``keep_interrupted`` is False.  ``added`` is (DIR,
    images, labels, K): images trained on besides the data, each K times an epoch."""
    if config.kernel == "compiled":
        resolve_kernel(config)  # needs numba: said before any work
    added_files = [] if added is None else [added[0] / f"{n}{gz}" for n in PAIR.values()
                                            for gz in ("", ".gz")]  # fmt: skip
    _check_outputs(config, out, checkpoint, data_dir, [*inputs, *added_files])
    data = load_mnist(data_dir)
    data_name = "MNIST" if data_dir is None else str(data_dir)
    if added is not None:
        directory, images, labels, weight = added
        try:
            data = with_added(data, images, labels, weight)
        except ValueError as e:
            raise UsageError(f"--add {directory}: {e}") from None
        data_name += f" + {directory} ({len(labels):,} images x{weight})"
    _check_data(config, data)
    progress = Progress(config, quiet, checkpoint, checkpoint_every)
    progress.say(
        f"training {'-'.join(map(str, config.sizes))} ({config.activation} hidden, "
        f"{config.output} output, {config.loss}, {config.optimizer} lr {config.lr:g}, "
        f"batch {config.batch_size}, {config.epochs} epochs, seed {config.seed}) on "
        f"{len(data.train_images) - config.validation:,} images, "
        f"validating on {config.validation:,}"
    )
    loop = _choose_loop(config, progress.say)
    try:
        run = service.train(
            config,
            data,
            loop=loop,
            resume=resume,
            on_batch=progress.on_batch,
            on_epoch=progress.on_epoch,
            on_state=progress.on_state if checkpoint is not None else None,
            keep_interrupted=keep_interrupted,
            data_name=data_name,
        )
    finally:
        progress.close_bar()
    return _finish(run, config, out, checkpoint, progress)


def _finish(run: service.Run, config: TrainConfig, out: Path, checkpoint, progress) -> int:
    """Save a kept run and say how it went; the exit code."""
    unsaved, history = progress.unsaved, run.history
    if unsaved:
        print(
            f"warning: {len(unsaved)} checkpoint(s) not saved (epochs "
            f"{', '.join(map(str, unsaved[:5]))}{', ...' if len(unsaved) > 5 else ''})",
            file=sys.stderr,
        )
    if not history.epochs:
        print("interrupted before the first epoch ended: no model saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not run.kept:
        print(
            f"interrupted after {len(history.epochs)} of {config.epochs} epochs: no model saved",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    try:
        service.save(out, run)
    except OutputError as e:
        kept = "" if checkpoint is None or unsaved else (
            f"; the run is in {checkpoint}: digitnet train --resume {checkpoint} "
            "--out ANOTHER.safetensors saves it"
        )  # fmt: skip
        raise UsageError(f"{e}{kept}") from None
    if history.stopped == "interrupted":
        print(
            f"interrupted: kept the best model so far (epoch {history.best_epoch})", file=sys.stderr
        )
    elif history.stopped == "early-stopped":
        progress.say(f"stopped early: no better validation accuracy for {config.patience} epochs")
    result = run.evaluation
    print(
        f"test accuracy {result.accuracy:.2%} ({round(result.accuracy * result.n)}/{result.n}) "
        f"with the weights of epoch {history.best_epoch}; trained in {run.seconds:.1f}s; "
        f"saved {out}"
    )
    return EXIT_INTERRUPTED if history.stopped == "interrupted" else 0
