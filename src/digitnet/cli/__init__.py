"""The ``digitnet`` command: a thin layer over the library, one module per command
(``train``, ``evaluate``, ``predict``, ``serve``, ``plot``, ``info``, ``export``,
``sweep``) and a parser built from the settings' declarations (``parser``).

This package is the only code that prints or exits.  Library errors (bad files, bad
arguments, an output that cannot be written) become one line on stderr and exit
code 2; a training run that diverges exits 1; Ctrl-C exits 130 and SIGTERM 143,
both after keeping what can be kept.
"""

from __future__ import annotations

import sys

# Ctrl-C while the libraries load (NumPy, numba; under a second) is held until they
# have loaded, then handled as everywhere else: one line.  Raised inside NumPy's own
# import, it would surface as a misleading ImportError with a traceback.
try:
    import signal

    _hold = hasattr(signal, "pthread_sigmask")
    if _hold:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        import threading
        import warnings
        from collections.abc import Sequence

        from ..config import TrainingDiverged
        from ..files.data import DataError
        from ..files.modelfile import ModelFileError
        from ..files.paths import InputError, OutputError
        from ..vision.preprocess import PictureError
        from .base import EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
        from .evaluate import cmd_evaluate
        from .export import cmd_export
        from .info import cmd_info
        from .parser import build_parser, parse
        from .plot import cmd_plot
        from .predict import cmd_predict
        from .serve import cmd_serve
        from .sweep import cmd_sweep, sweep_worker
        from .train import cmd_train, train_and_save

        if _hold and signal.SIGINT in signal.sigpending():
            signal.sigtimedwait({signal.SIGINT}, 0)  # taken, so it is not raised again
            raise KeyboardInterrupt
    finally:
        if _hold:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    raise SystemExit(130) from None

__all__ = [
    "EXIT_INTERRUPTED", "UsageError", "build_parser", "main", "sweep_worker", "train_and_save",
]  # fmt: skip

COMMANDS = {
    "export": cmd_export,
    "sweep": cmd_sweep,
    "plot": cmd_plot,
    "serve": cmd_serve,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "info": cmd_info,
    "predict": cmd_predict,
}
#: Errors the library raises about what it was given: one line, exit code 2.
USAGE_ERRORS = (UsageError, DataError, ModelFileError, PictureError, OutputError, InputError)


def _os_error(e: OSError) -> str:
    """An OSError as one line: the file, and what went wrong."""
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or type(e).__name__}"


def _catch_sigterm(received: list[int]):
    """SIGTERM as Ctrl-C: the run stops the same way and keeps what it would keep.
    The previous handler back, or None when not on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the command line: a Python warning (a NumPy
    RuntimeWarning, a library's DeprecationWarning) as one line in the commands' own
    ``warning: ...`` style, never the file, line number and source line it came from."""
    text = " ".join(str(message).split())
    print(f"warning: {text} ({category.__name__})", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    received: list[int] = []
    previous = _catch_sigterm(received)
    command = "digitnet"
    shown, warnings.showwarning = warnings.showwarning, _one_line_warning
    try:
        args = parse(argv)
        command = f"digitnet {args.command}"
        code = COMMANDS[args.command](args)
        return 128 + received[0] if code == EXIT_INTERRUPTED and received else code
    except TrainingDiverged as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except (*USAGE_ERRORS, ValueError) as e:  # ValueError: SizeError and the other checks
        print(f"{command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print(f"{command}: error: out of memory", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted" if not received else "stopped by SIGTERM", file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    except BrokenPipeError:
        return 0
    except OSError as e:  # a disk that fills up, a folder that vanishes, ...
        print(f"{command}: error: {_os_error(e)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        warnings.showwarning = shown
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
