"""``digitnet sweep``: many architectures trained as the trials of an Optuna study,
in worker processes, with a table and a plot of how they compare."""

from __future__ import annotations

import argparse
import json
import sys

from .base import EXIT_INTERRUPTED, EXIT_USAGE


def _trial_line(t) -> str:
    return (
        f"{'-'.join(map(str, t.sizes)):<18} {t.activation:<8} lr {t.lr:<6g} seed {t.seed:<3} "
        f"{t.n_parameters:>9,} params  test {t.test_accuracy:7.2%}  {t.seconds:7.1f}s"
    )


def _sweep_table(trials) -> str:
    head = f"{'sizes':<18} {'activation':<10} {'lr':>6} {'seed':>4} {'params':>9} {'test':>7} "
    lines = [head + f"{'seconds':>8}  model"]
    for t in trials:
        lines.append(
            f"{'-'.join(map(str, t.sizes)):<18} {t.activation:<10} {t.lr:>6g} {t.seed:>4} "
            f"{t.n_parameters:>9,} {t.test_accuracy:>7.2%} {t.seconds:>8.1f}  {t.model}"
        )
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .. import sweep as sweeps
    from ..sweep import workers

    plan = sweeps.Sweep(
        tuple(args.sizes),
        tuple(args.activation),
        tuple(args.lr),
        args.seeds,
        args.epochs,
        args.sampler,
        args.trials,
    )
    job = workers.Job(plan, str(args.out), args.storage, args.study)
    study = workers.prepare(job, args.workers)
    say = (lambda *a, **k: print(*a, **k, file=sys.stderr)) if args.json else print
    before = sweeps.results(study)
    left, total = sweeps.remaining(study, plan), plan.size()
    where = args.storage or args.out / sweeps.JOURNAL
    say(
        f"sweep {args.study!r} ({where}): {total} trials, {len(before)} finished already, "
        f"{left} to train with {args.workers} worker(s), {args.epochs} epochs each; "
        f"models in {args.out}",
        flush=True,
    )
    shown = {t.number for t in before}
    bar = tqdm(total=total, initial=len(before), unit="trial", file=sys.stderr, leave=False)

    def on_change(finished, training) -> None:
        for t in finished:
            if t.number not in shown:
                shown.add(t.number)
                bar.write(_trial_line(t), file=sys.stderr if args.json else sys.stdout)
        bar.n = len(finished)
        names = [f"{p.get('sizes')} {p.get('activation')}" for p in training]
        bar.set_postfix_str(("training " + ", ".join(names)) if names else "", refresh=False)
        bar.refresh()

    started, interrupted = [], False
    try:
        if left:
            started = workers.start_workers(job, args.workers)
            workers.watch(study, started, on_change)
        sweeps.release_stale(study)  # this machine's dead workers' trials are not waited for
        workers.wait_for_others(study, on_change, say)
    except KeyboardInterrupt:
        interrupted = True
        bar.write("interrupted: stopping the workers; finished trials are kept", file=sys.stderr)
        workers.stop_workers(started)
    finally:
        bar.close()
    sweeps.release_stale(study)
    return _report(args, study, started, interrupted, total, say)


def _report(args: argparse.Namespace, study, started, interrupted: bool, total: int, say) -> int:
    """After the workers: their errors, the table (or JSON lines), the plot; the exit code."""
    from io import BytesIO

    from .. import sweep as sweeps
    from ..files.paths import atomic_write
    from ..inspect import plots
    from ..sweep.workers import stopped_workers, worker_errors

    errors, stopped = worker_errors(started), stopped_workers(started)
    for error in errors:
        print(f"digitnet sweep: error in a worker: {error}", file=sys.stderr)
    if stopped and not interrupted:  # a worker stopped from outside: the sweep is not done
        interrupted = True
        say(f"interrupted: {len(stopped)} worker(s) stopped by {', '.join(sorted(set(stopped)))}")
    trials = sweeps.results(study)
    if trials:
        buffer = BytesIO()
        plots.sweep_figure(trials).savefig(buffer, format="png", dpi=110)
        atomic_write(args.out / sweeps.PLOT, buffer.getvalue())
    if args.json:
        for t in trials:
            print(json.dumps(t.to_json(), allow_nan=False))
    else:
        print(_sweep_table(trials))
    say(f"{len(trials)} of {total} trials finished; plot in {args.out / sweeps.PLOT}")
    if interrupted:
        say("run the same command again to train the rest")
        return EXIT_INTERRUPTED
    return EXIT_USAGE if errors else 0


def sweep_worker(job: str, parent: int) -> int:
    """A sweep's worker process (``workers.start_workers`` starts it, ``parent`` being
    that process's id): trains trials until none is left or its parent is gone; its
    one line of error, if any, goes to stderr."""
    from ..sweep.workers import Job, die_with_parent, work

    try:
        die_with_parent(parent)
        work(Job.from_json(job))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as e:  # reported by the command that started the worker
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_USAGE
    return 0
