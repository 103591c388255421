"""Memory a picture leaves behind: give it back to the system (glibc only).

A picture of ``pictures.MAX_IMAGE_PIXELS`` takes tens of megabytes while it is decoded;
without these, glibc keeps that memory in the decoding threads' heaps after the
picture is done.  Where there is no glibc, both functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's mallopt parameters: the free memory at the top of a heap above which it
#: is given back, and the size above which a block gets its own mapping.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Free memory a heap keeps at its top (``map_large_blocks``): more than reading a
#: drawing pad's picture takes at once.
KEEP_FREE = 8 << 20


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


def map_large_blocks(threshold: int = 1 << 20, keep: int = KEEP_FREE) -> None:
    """Make glibc give every block of ``threshold`` bytes or more its own mapping,
    returned to the system the moment it is freed.  By default glibc raises that
    threshold after the first large free (up to 32 MB), after which a picture's 16-64 MB
    arrays come from the threads' heaps, where freed memory lingers between pictures
    (64 concurrent large pictures: the server peaked 361 MiB above its start without
    this, 281 MiB with it, two pictures' worth).

    Fixing the threshold also fixes the one for trimming a heap at 128 KiB, which would
    hand back and fault in again the arrays of every small picture (a 280x280 pad: 739
    page faults and 3.1 ms to read instead of 4 and 1.7 ms); heaps keep ``keep`` bytes
    free at their top instead, and ``release_memory`` still returns the rest after a
    large picture.  Does nothing where there is no glibc."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(M_MMAP_THRESHOLD, threshold)
        _LIBC.mallopt(M_TRIM_THRESHOLD, keep)
