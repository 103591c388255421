"""The training loop compiled by numba, from the same source as the plain one.

``loop.train_batches`` and every function it calls (backprop, the activations, the
costs, the optimisers' rules: the registries' entries) are written in NumPy that
numba also compiles.  Here numba is told to compile them (``register_jitable``), and
the loop is specialised for one configuration's functions: a closure over them,
compiled once (about 40 s of one core) and cached on disk, keyed by the source of
every file it is built from, found by following its calls (``reachable``).  For
784-16-16-10 a mini-batch of 32 costs about 80 NumPy calls in the plain loop;
compiled, that overhead is gone (``benchmarks/results/bench.md``).

Three things live only here, each measured:

- The primitives of ``digitnet.learn.primitives`` (applying a function to every element,
  an optimiser's rule to every parameter, row maxima and sums, counting right
  guesses) get loops of their own: numba's whole-array versions measured up to ten
  times slower, or are missing.
- Subnormal floats are flushed to zero while the compiled loop runs
  (``digitnet.learn._mxcsr``, x86 only; elsewhere nothing changes).  Adam's moments for
  rarely inked pixels decay into the subnormal range, where x86 arithmetic is up to
  100 times slower.  Measured on a batch-32 epoch of the default network here
  (interleaved epochs, 10 each): 208 ms median with flushing, 229 without.
- The next batch's rows of images are prefetched while this batch is worked on
  (``primitives.prefetch_rows``, LLVM's prefetch; plain NumPy has none): a batch's 32
  rows lie anywhere in 47 MB, and each waited for memory in turn.  Alternating
  batch-32 epochs (11 each): 193 ms median with it, 211 without (best 159 and 174).

Install with ``pip install digitnet[fast]`` (numba, and SciPy for its BLAS).  numba
is imported only when a compiled loop is asked for, so other commands start quickly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import platform
import sys
import tempfile
import types
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

#: numba (and SciPy, whose BLAS numba's np.dot calls) are installed.
AVAILABLE = all(importlib.util.find_spec(name) is not None for name in ("numba", "scipy"))

#: Where subnormal flushing exists: x86's MXCSR register.
FLUSHES_SUBNORMALS = platform.machine().lower() in ("x86_64", "amd64")

_registered: set = set()


class CompileError(ValueError):
    """A function of the configuration is not one numba can compile."""


@contextmanager
def subnormals_flushed(enabled: bool = FLUSHES_SUBNORMALS):
    """While inside: floats below 1.2e-38 read and compute as 0 (x86 FTZ and DAZ),
    the CPU's setting restored after.  Where ``enabled`` is false, changes nothing."""
    if not enabled:
        yield
        return
    from . import _mxcsr

    old = _mxcsr.flush_subnormals()
    try:
        yield
    finally:
        _mxcsr.restore(old)


def reachable(functions: Iterable[Callable]) -> list[types.FunctionType]:
    """Every plain Python function the loop runs: ``functions`` and, transitively,
    every function they call by a global name or hold in a closure.  Both what numba
    is told to compile and the cache key (``fingerprint``) come from this one walk."""
    seen: dict[types.FunctionType, None] = {}
    todo = list(functions)
    while todo:
        function = todo.pop()
        if not isinstance(function, types.FunctionType) or function in seen:
            continue
        seen[function] = None
        todo.extend(function.__globals__.get(name) for name in function.__code__.co_names)
        todo.extend(cell.cell_contents for cell in function.__closure__ or ())
    return list(seen)


def _register(functions: Iterable[Callable]) -> None:
    """Let numba compile every function the loop runs (``reachable``); the
    primitives have loops of their own (``_compiled_primitives``), and NumPy's own
    functions numba knows already."""
    from numba.extending import register_jitable

    for function in reachable(functions):
        if function not in _registered and function not in _compiled_primitives():
            _registered.add(function)
            register_jitable(function)


def _prefetch_rows(images, rows):
    """numba's loop for ``primitives.prefetch_rows``."""
    prefetch = _prefetch_intrinsic()

    def impl(images, rows):
        for r in range(rows.shape[0]):
            for p in range(0, images.shape[1], CACHE_LINE):
                prefetch(images, rows[r], p)

    return impl


def _rows_of(a, rows):
    """numba's loop for ``primitives.rows_of``."""

    def impl(a, rows):
        out = np.empty((rows.shape[0],) + a.shape[1:], a.dtype)
        for r in range(rows.shape[0]):
            out[r] = a[rows[r]]
        return out

    return impl


def _scaled_rows(images, rows, start, stop, scale, shift, out, at):
    """numba's loop for ``primitives.scaled_rows``."""
    real = out.dtype

    def impl(images, rows, start, stop, scale, shift, out, at):
        for r in range(rows.shape[0]):  # slices indexed from 0: the loop vectorises
            source = images[rows[r], start:stop]
            target = out[r, at : at + stop - start]
            for p in range(target.shape[0]):
                target[p] = real(source[p]) * scale + shift

    return impl


def _times_transposed(a, W):
    """numba's loop for ``primitives.times_transposed`` (float32 throughout: the
    compiled loop's one type)."""
    from .primitives import block_rows

    def impl(a, W):
        if a.shape[0] <= 64:
            return a @ W.T
        out = np.empty((a.shape[0], W.shape[0]), a.dtype)
        rows = block_rows(W.shape[1], W.shape[0])
        for s in range(0, a.shape[0], rows):
            np.dot(a[s : s + rows], W.T, out[s : s + rows])
        return out

    return impl


def _as_written(primitive: Callable) -> Callable:
    """numba's version of a primitive it compiles from the primitive's own source."""
    return lambda *args: primitive


def _row_max(z):
    """numba's loop for ``primitives.row_max``."""

    def impl(z):
        out = z[:, :1].copy()
        for i in range(z.shape[0]):
            for j in range(1, z.shape[1]):
                out[i, 0] = max(out[i, 0], z[i, j])
        return out

    return impl


def _each(f, z, b):
    """numba's loop for ``primitives.each``."""

    def impl(f, z, b):
        out = np.empty_like(z)
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                out[i, j] = f(z[i, j] + b[j])
        return out

    return impl


def _times_each(g, f_prime, a):
    """numba's loop for ``primitives.times_each``."""

    def impl(g, f_prime, a):
        out = np.empty_like(g)
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                out[i, j] = g[i, j] * f_prime(a[i, j])
        return out

    return impl


def _each_parameter(rule, params, grad, decay, m, v, constants):
    """numba's loop for ``primitives.each_parameter``."""

    def impl(rule, params, grad, decay, m, v, constants):
        for i in range(params.shape[0]):
            g = grad[i] + decay[i] * params[i]
            params[i], m[i], v[i] = rule(params[i], g, m[i], v[i], constants)

    return impl


def _row_sum(z):
    """numba's loop for ``primitives.row_sum``."""

    def impl(z):
        out = np.zeros((z.shape[0], 1), z.dtype)
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                out[i, 0] += z[i, j]
        return out

    return impl


def _correct_guesses(a, labels):
    """numba's loop for ``primitives.correct_guesses``."""

    def impl(a, labels):
        right = 0
        for i in range(a.shape[0]):
            best = 0
            for j in range(1, a.shape[1]):
                if a[i, j] > a[i, best]:
                    best = j
            right += best == labels[i]
        return right

    return impl


@cache
def _compiled_primitives() -> tuple:
    """Give numba its own version of each primitive (``digitnet.learn.primitives``), a loop
    over elements (the functions above), and return the primitives."""
    from numba.extending import overload

    from . import primitives

    loops = {
        primitives.prefetch_rows: _prefetch_rows,
        primitives.rows_of: _rows_of,
        primitives.scaled_rows: _scaled_rows,
        primitives.row_max: _row_max,
        primitives.times_transposed: _times_transposed,
        primitives.block_rows: _as_written(primitives.block_rows),
        primitives.transposed_times: _as_written(primitives.transposed_times),
        primitives.each: _each,
        primitives.times_each: _times_each,
        primitives.each_parameter: _each_parameter,
        primitives.row_sum: _row_sum,
        primitives.correct_guesses: _correct_guesses,
    }
    for primitive, loop in loops.items():
        overload(primitive, strict=False)(loop)  # not strict: _as_written takes *args
    return tuple(loops)


#: Bytes in a cache line (x86 and most ARM cores), and so elements of uint8 images.
CACHE_LINE = 64


@cache
def _prefetch_intrinsic():
    """``_prefetch(a, i, j)``: a hint to bring the cache line holding a[i, j] closer
    (LLVM's prefetch, a no-op where the CPU has none), for compiled code."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def _prefetch(typingctx, a, i, j):
        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            where = cgutils.get_item_pointer(
                context, builder, signature.args[0], array, list(args[1:]), wraparound=False
            )
            byte = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            hint = ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32])
            prefetch = cgutils.get_or_insert_function(builder.module, hint, "llvm.prefetch.p0")
            read, keep_everywhere, data = (ir.Constant(i32, k) for k in (0, 3, 1))
            builder.call(prefetch, [builder.bitcast(where, byte), read, keep_everywhere, data])
            return context.get_dummy_value()

        return types.void(a, i, j), codegen

    return _prefetch


def source_files(functions: Iterable[Callable]) -> list[Path]:
    """The files whose code the loop of ``functions`` is built from: those of every
    function it runs (``reachable``) and this module's (the primitives' loops)."""
    files = {Path(inspect.getsourcefile(f)).resolve() for f in reachable(functions)}
    return sorted(files | {Path(__file__).resolve()})


@cache
def fingerprint(functions: tuple[Callable, ...]) -> int:
    """A number that changes with the source of any file the loop of ``functions``
    is built from (``source_files``): part of the compiled loop's cache key, so an
    edited equation is never run from a stale cache entry."""
    digest = hashlib.sha256()
    for path in source_files(functions):
        digest.update(path.read_bytes())
    return int(digest.hexdigest()[:15], 16)


@cache
def compiled(body: Callable, functions: tuple[Callable, ...]) -> Callable:
    """``body(*args, *functions)`` as a compiled function of ``args`` (a numba
    dispatcher, compiled on first call, then cached on disk)."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  the BLAS behind numba's np.dot

    _compiled_primitives()
    _register((body, *functions))
    rule, constants, f, f_prime, output, cost, delta = functions
    key = fingerprint((body, *functions))

    def loop(net, data, plan, state, hyper):
        assert key  # part of the cache key: the source this was built from
        return body(net, data, plan, state, hyper, rule, constants, f, f_prime, output, cost, delta)

    # error_model="numpy": x / 0 gives inf as in NumPy, without a check on every division.
    return numba.njit(cache=True, nogil=True, error_model="numpy")(loop)


def _cached_anywhere() -> bool:
    """Whether numba's cache holds any compiled loop of this module, in any of the
    folders numba keeps it in (``NUMBA_CACHE_DIR``, ``__pycache__`` beside this file,
    the user's cache folder).  Reading a folder is quick; importing numba to ask it
    costs a second and 100 MB, which a first run should not pay for a certain no."""
    here = Path(__file__).resolve().parent
    subpath = f"{here.name}_{hashlib.sha1(str(here).encode()).hexdigest()}"
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
    folders = [here / "__pycache__", user / subpath]
    if os.environ.get("NUMBA_CACHE_DIR"):  # then numba looks there only
        folders = [Path(os.environ["NUMBA_CACHE_DIR"]) / subpath]
    pattern = f"{Path(__file__).stem}.compiled.locals.loop-*.nbi"
    return any(any(folder.glob(pattern)) for folder in folders if folder.is_dir())


def is_compiled(body: Callable, functions: tuple[Callable, ...], args: tuple) -> bool:
    """Whether the compiled loop for these arguments' types is ready without compiling:
    already in memory, or in numba's cache on disk (then it is loaded now)."""
    if "numba" not in sys.modules and not _cached_anywhere():
        return False
    import numba

    dispatcher = compiled(body, functions)
    signature = tuple(numba.typeof(a) for a in args)
    if signature in dispatcher.overloads:
        return True
    try:  # numba's own cache lookup, as its dispatcher does before compiling
        result = dispatcher._cache.load_overload(signature, dispatcher.targetctx)
    except Exception:  # an unreadable or foreign cache: treat as not compiled
        return False
    if result is None:
        return False
    dispatcher.add_overload(result)
    return True


@contextmanager
def building(body: Callable, functions: tuple[Callable, ...], args: tuple, *, wait: bool):
    """Hold the lock on building the loop for these functions and arguments' types
    (a file in the temporary folder) while inside; yields False, without waiting,
    where ``wait`` is false and another process holds it."""
    import numba

    key = repr(
        (fingerprint((body, *functions)), [f.__qualname__ for f in functions], numba.typeof(args))
    )
    key += os.environ.get("NUMBA_CACHE_DIR", "")
    name = f"digitnet-compile-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"
    try:
        import fcntl
    except ImportError:  # no flock (Windows): build without a lock
        yield True
        return
    with open(Path(tempfile.gettempdir()) / name, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def run(body: Callable, functions: tuple[Callable, ...], args: tuple):
    """The compiled ``body(*args, *functions)``, with subnormals flushed while it runs.
    A function numba cannot compile is a ``CompileError`` naming it."""
    loop = compiled(body, functions)
    with subnormals_flushed():
        try:
            return loop(*args)
        except Exception as e:
            if type(e).__module__.startswith("numba"):
                names = ", ".join(f.__name__ for f in functions)
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise CompileError(
                    f"the compiled loop cannot compile this configuration ({names}): "
                    f"{first}; use kernel 'numpy'"
                ) from None
            raise
