"""Memory a picture leaves behind: give it back to the system (glibc only).

A picture of ``pictures.MAX_IMAGE_PIXELS`` takes tens of megabytes while it is decoded;
without these, glibc keeps that memory in the decoding threads' heaps after the
picture is done.  Where there is no glibc, both functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's mallopt parameter for the size above which a block gets its own mapping.
M_MMAP_THRESHOLD = -3


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def release_memory() -> None:
    """Give freed memory back to the system after a picture: glibc keeps freed small
    blocks in the thread's arena for reuse; malloc_trim returns what it can (after
    64 large pictures: 96 MiB kept without it, 79 MiB with it, from 78 MiB before).
    Does nothing where there is no glibc."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def map_large_blocks(threshold: int = 1 << 20) -> None:
    """Make glibc give every block of ``threshold`` bytes or more its own mapping,
    returned to the system the moment it is freed.  By default glibc raises that
    threshold after the first large free (up to 32 MB), after which a picture's 16-64 MB
    arrays come from the threads' heaps, where freed memory lingers between pictures
    (64 concurrent large pictures: the server peaked 361 MiB above its start without
    this, 281 MiB with it, two pictures' worth).  Does nothing where there is no glibc."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(M_MMAP_THRESHOLD, threshold)
