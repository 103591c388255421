"""Files on disk, read and written so that nothing hangs and nothing is destroyed.

Every writer (a model, a checkpoint, a plot, a saved input picture) takes two steps:

- ``check_output(path, inputs=...)``, before any work: refuses a path that exists
  and is not a regular file (a folder, ``/dev/null``, a FIFO), a path that is one of
  the command's own inputs, a folder that is missing or cannot be written, a name
  too long for the folder, and a folder without room for ``size`` bytes.  It probes
  by creating and removing the very temporary file ``atomic_write`` will use.
- ``atomic_write(path, data)``, at the end: the bytes go to a temporary file
  ``.NAME.PID.RANDOM.tmp`` in the same folder, are flushed to disk, and the file is
  renamed over ``path``, so ``path`` holds its old content or all of the new, never
  half.  Temporary files of that naming left by a process that no longer runs (one
  killed in the middle of a save) are removed first.

Readers call ``require_regular(path)`` (or ``open_regular``) before opening a file,
so a FIFO or a device given as a model or a picture is refused instead of blocking
the command forever.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

#: Name length most file systems allow, when the folder cannot be asked.
DEFAULT_NAME_MAX = 255
#: Temporary files of the naming before the process id was part of it are removed
#: when older than this (seconds): no save takes that long.
LEGACY_TEMP_AGE = 3600
_TEMP = re.compile(r"\.(?P<stem>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")
_LEGACY_TEMP = re.compile(r"\.(?P<stem>.+)\.[a-z0-9_]{8}\.tmp")


class OutputError(ValueError):
    """An output path that cannot or must not be written."""


class InputError(ValueError):
    """An input path that is not a regular file digitnet can read."""


def file_kind(mode: int) -> str:
    """What an ``st_mode`` describes, for messages: 'a directory', 'a FIFO', ..."""
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a regular file"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


# -- inputs ------------------------------------------------------------------------------


def require_regular(
    path: str | os.PathLike, error: type[Exception] = InputError, expected: str = "a file"
) -> os.stat_result:
    """``path``'s stat if it is a regular file (symlinks followed); else ``error``
    saying what it is, without opening it (opening a FIFO blocks)."""
    try:
        info = os.stat(path)
    except OSError as e:
        raise error(f"{path}: cannot open ({e.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: is {file_kind(info.st_mode)}, expected {expected}")
    return info


def open_regular(
    path: str | os.PathLike, error: type[Exception] = InputError, expected: str = "a file"
) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file.

    The file is opened with O_NONBLOCK (which never waits for a FIFO's writer) and
    checked with fstat on the open descriptor, so what is read is what was checked."""
    require_regular(path, error, expected)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise error(f"{path}: cannot open ({e.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise error(f"{path}: is {file_kind(info.st_mode)}, expected {expected}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def regular_files(folder: str | os.PathLike, pattern: str) -> tuple[list[Path], list[str]]:
    """The regular files of ``folder`` whose names match ``pattern``, newest first
    (by modification time), and a reason for each other entry that matched: symbolic
    links (dangling, looping or not) are not followed, special files not opened, and
    entries that vanish or cannot be examined are passed over, never raised."""
    found, skipped = [], []
    for path in Path(folder).glob(pattern):
        try:
            info = os.lstat(path)
        except OSError as e:
            skipped.append(f"{path}: cannot read ({e.strerror})")
            continue
        if stat.S_ISLNK(info.st_mode):
            skipped.append(f"{path}: is a symbolic link, not followed")
        elif not stat.S_ISREG(info.st_mode):
            skipped.append(f"{path}: is {file_kind(info.st_mode)}, not a regular file")
        else:
            found.append((info.st_mtime_ns, path))
    return [path for _, path in sorted(found, reverse=True)], sorted(skipped)


# -- outputs -----------------------------------------------------------------------------


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX


def _temp_stem(path: Path, name_max: int) -> str:
    """``path``'s name, cut so that ``.STEM.PID.RANDOM.tmp`` fits in ``name_max`` bytes."""
    room = name_max - len(f"..{2**22}.{'0' * 8}.tmp")  # pids are at most 2^22 on Linux
    stem = path.name
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return stem


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path``: ``.NAME.PID.RANDOM.tmp`` (NAME cut short
    if the whole would not fit in the folder's name limit)."""
    path = Path(path)
    stem = _temp_stem(path, _name_max(path.parent))
    return path.parent / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or nothing we can ask about: keep
    return True


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files a save of ``path`` left behind: ours by name, and made by a
    process that is no longer running (or, in the older naming without a process id,
    more than an hour old)."""
    path = Path(path)
    stem = _temp_stem(path, _name_max(path.parent))
    prefix = f".{stem}."
    try:
        names = [e.name for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return []
    stale = []
    now = time.time()
    for name in names:
        match = _TEMP.fullmatch(name)
        if match and match["stem"] == stem:
            if not _running(int(match["pid"])):
                stale.append(path.parent / name)
            continue
        legacy = _LEGACY_TEMP.fullmatch(name)
        if legacy and legacy["stem"] == path.name:
            try:
                old = now - os.lstat(path.parent / name).st_mtime > LEGACY_TEMP_AGE
            except OSError:
                continue
            if old:
                stale.append(path.parent / name)
    return stale


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Remove what ``stale_temporaries(path)`` finds; how many files went."""
    removed = 0
    for tmp in stale_temporaries(path):
        try:
            if stat.S_ISREG(os.lstat(tmp).st_mode):
                tmp.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same absolute path, or (for files that
    exist) the same inode, which catches symlinks and hard links."""
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        a_stat, b_stat = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (a_stat.st_dev, a_stat.st_ino) == (b_stat.st_dev, b_stat.st_ino)


def check_output(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    size: int = 0,
    what: str = "",
) -> Path:
    """Check, before any work, that ``atomic_write(path, ...)`` can succeed and will
    destroy nothing; ``path`` back, or OutputError naming the problem.

    ``inputs`` are the files the same command reads (never written over); ``size``
    the bytes the output will need (checked against the folder's free space);
    ``what`` names the option in messages (e.g. "--out")."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    name_max = _name_max(path.parent)
    length = len(os.fsencode(path.name))
    if length > name_max:
        raise OutputError(
            f"{label}: the name is {length} bytes, more than the {name_max} a file name may have"
        )
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    except NotADirectoryError:
        raise OutputError(f"{label}: {path.parent} is not a folder") from None
    except OSError as e:
        raise OutputError(f"{label}: cannot use this path ({e.strerror})") from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        is_dir = stat.S_ISDIR(existing.st_mode)
        hint = "; give a file name such as model.safetensors" if is_dir else ""
        raise OutputError(
            f"{label}: exists and is {file_kind(existing.st_mode)}, not a regular file; "
            f"refusing to replace it{hint}"
        )
    for source in inputs:
        if source is not None and same_file(path, source):
            raise OutputError(f"{label}: is {source}, which this command reads; give another name")
    folder = path.parent
    try:
        folder_stat = os.stat(folder)
    except FileNotFoundError:
        raise OutputError(f"{label}: folder {folder} does not exist") from None
    except OSError as e:
        raise OutputError(f"{label}: cannot use folder {folder} ({e.strerror})") from None
    if not stat.S_ISDIR(folder_stat.st_mode):
        raise OutputError(f"{label}: {folder} is not a folder")
    probe = temp_path(path)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise OutputError(f"{label}: cannot write in {folder} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    if size:
        try:
            fs = os.statvfs(folder)
            free = fs.f_bavail * fs.f_frsize
        except OSError:
            free = None
        if free is not None and free < size:
            raise OutputError(f"{label}: needs about {size:,} bytes but {folder} has {free:,} free")
    return path


def _file_mode(path: Path) -> int:
    """The mode ``path`` has, or a new file would get under the current umask."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a
    rename, so ``path`` holds either its old content or all of the new, never half.

    Refuses (OutputError) to replace anything but a regular file; any OSError (a
    full disk, a read-only or vanished folder) becomes an OutputError naming the
    path, with the temporary file removed."""
    path = Path(path)
    remove_stale_temporaries(path)
    try:
        existing = os.lstat(path)
    except OSError:
        existing = None
    if existing is not None and not (
        stat.S_ISREG(existing.st_mode) or stat.S_ISLNK(existing.st_mode)
    ):
        raise OutputError(
            f"{path}: exists and is {file_kind(existing.st_mode)}, not a regular file; "
            "refusing to replace it"
        )
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({_reason(e)})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode(path))  # give the usual permissions
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({_reason(e)})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _reason(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"{e.strerror}: the disk or quota is full"
    return e.strerror or type(e).__name__


def _sync_folder(folder: Path) -> None:
    """Flush the rename itself to disk, where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
