"""Pictures in and out of the API: PNG data URLs decoded (``decode_png_data_url``) and
made (``png_data_url``, the one PNG encoder), grey bytes decoded (``decode_grey``, what
the page's pad sends: the same pixels as its PNG, cheaper to read), and ``Pictures``, the
bounded pool that decodes them.

Pictures over ``MAX_IMAGE_PIXELS`` are refused before they are decoded
(``preprocess.PictureTooLarge``), and at most ``PICTURE_WORKERS`` are decoded at once
(``PICTURE_QUEUE`` more wait; beyond that, ``TooManyPictures``), which bounds the
memory pictures take to about ``PICTURE_WORKERS`` x ``PICTURE_BYTES``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from PIL import Image

from ..vision.preprocess import PictureError, PictureTooLarge, open_picture
from .memory import release_memory
from .schemas import GreyPicture

#: Largest picture accepted by /api/predict, in pixels (width x height).
MAX_IMAGE_PIXELS = 4_000_000
#: Pictures decoded at once (one per core of the machine this was measured on).
PICTURE_WORKERS = 2
#: Pictures that may wait for a worker; more at once get a 503.
PICTURE_QUEUE = 64
#: Memory one picture of MAX_IMAGE_PIXELS takes while it is decoded and brought to
#: MNIST's form, at most (measured: 142 MiB for a 2000x2000 16-bit RGBA PNG, the
#: costliest kind; tests/test_redteam.py checks the bound).
PICTURE_BYTES = 160 * 1024 * 1024
PNG_DATA_URL = "data:image/png;base64,"
#: Small pictures: their float32 arrays are at most 1 MiB, under the size glibc maps
#: on its own and hands back when freed (``memory.map_large_blocks``).  They are not
#: followed by ``release_memory`` (the little they leave in a heap is what the next
#: picture reuses, and malloc_trim costs more than reading one: on a loaded 2-core
#: machine a 280x280 pad took 3.3 ms to read and 4-7 ms to trim), and pictures this
#: small with quick work are read on the event loop itself (``Pictures.read``).
SMALL_PIXELS = 512 * 512

T = TypeVar("T")


class TooManyPictures(RuntimeError):
    """Every picture worker is busy and the queue is full."""


def decode_png_data_url(url: str) -> bytes:
    """A PNG data URL -> the PNG's bytes, or PictureError saying what arrived."""
    if not url.startswith(PNG_DATA_URL):
        head = url[:30] + ("..." if len(url) > 30 else "")
        raise PictureError(f"image must be a data URL starting {PNG_DATA_URL!r}, got {head!r}")
    try:
        data = base64.b64decode(url[len(PNG_DATA_URL) :], validate=True)
    except (binascii.Error, ValueError):
        raise PictureError("image: the data URL's base64 is malformed") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise PictureError("image: the data URL does not hold a PNG")
    return data


def decode_grey(grey: GreyPicture) -> np.ndarray:
    """Grey bytes -> uint8 (height, width), 0 black to 255 white.

    ``grey.data`` is base64 of a zlib stream (what the browser's
    ``CompressionStream("deflate")`` makes) of exactly width x height bytes.  Raises
    PictureTooLarge over ``MAX_IMAGE_PIXELS`` (before anything is inflated, and the
    stream is never inflated past width x height + 1 bytes), PictureError for
    malformed base64, a broken stream or another number of bytes.
    """
    n = grey.width * grey.height
    if n > MAX_IMAGE_PIXELS:
        raise PictureTooLarge(
            f"grey: {grey.width}x{grey.height} pixels is more than the "
            f"{MAX_IMAGE_PIXELS:,}-pixel limit; scale the picture down"
        )
    try:
        packed = base64.b64decode(grey.data, validate=True)
        inflate = zlib.decompressobj()
        data = inflate.decompress(packed, n + 1)
    except (binascii.Error, ValueError):
        raise PictureError("grey: data is not base64 of a zlib stream") from None
    except zlib.error as e:
        raise PictureError(f"grey: data is not a whole zlib stream ({e})") from None
    if len(data) != n or not inflate.eof or inflate.unused_data:
        got = f"{len(data)}" if len(data) <= n else f"more than {n}"
        whole = "" if inflate.eof or len(data) > n else " (the stream is cut short)"
        size = f"{grey.width}x{grey.height} = {n}"
        raise PictureError(f"grey: expected {size} bytes, got {got}{whole}")
    return np.frombuffer(data, np.uint8).reshape(grey.height, grey.width)


def declared_pixels(source: str | GreyPicture) -> int | None:
    """The pixels a picture says it has before it is decoded: grey bytes' width x
    height, a PNG's from its header (IHDR, bytes 16-24); None for anything else."""
    if isinstance(source, GreyPicture):
        return source.width * source.height
    if not source.startswith(PNG_DATA_URL):
        return None
    try:  # 32 base64 characters: the PNG's first 24 bytes
        head = base64.b64decode(source[len(PNG_DATA_URL) : len(PNG_DATA_URL) + 32], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(head) < 24 or not head.startswith(b"\x89PNG\r\n\x1a\n") or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width * height


def png_data_url(values: np.ndarray) -> str:
    """A uint8 (h, w) array as a grey PNG data URL."""
    png = io.BytesIO()
    Image.fromarray(values).save(png, format="PNG")
    return PNG_DATA_URL + base64.b64encode(png.getvalue()).decode("ascii")


def from_image(source: str | GreyPicture, work: Callable[[Image.Image], T]) -> T:
    """Decode one picture, a PNG data URL or grey bytes (at most ``MAX_IMAGE_PIXELS``),
    and hand it to ``work``; the memory of one over ``SMALL_PIXELS`` (or of one that
    could not be read) goes back to the system after."""
    picture = None
    try:
        if isinstance(source, GreyPicture):
            picture = Image.fromarray(decode_grey(source))
        else:
            picture = open_picture(decode_png_data_url(source), max_pixels=MAX_IMAGE_PIXELS)
        return work(picture)
    finally:
        small = picture is not None and picture.width * picture.height <= SMALL_PIXELS
        picture = None
        if not small:
            release_memory()


class Pictures:
    """The pool pictures are decoded on: at most ``workers`` at once and ``queue``
    waiting; one more is refused with TooManyPictures.  Its threads start with the
    first picture."""

    def __init__(self, workers: int = PICTURE_WORKERS, queue: int = PICTURE_QUEUE) -> None:
        self.workers, self.queue = workers, queue
        self.waiting = 0
        self.pool: ThreadPoolExecutor | None = None

    async def read(
        self, source: str | GreyPicture, work: Callable[[Image.Image], T], quick: bool = False
    ) -> T:
        """``work(picture)`` for ``source``, a PNG data URL or grey bytes, on the pool
        (``from_image``).  With ``quick`` (work of a millisecond or so, as a forward
        pass), a picture that declares at most ``SMALL_PIXELS`` is read right here
        instead: the hop to a thread and back, and the threads' contention for the
        interpreter, cost more than the picture (measured: 2.4 ms of the server's CPU
        a pad's grey bytes read here, 4.7 ms on the pool)."""
        if quick and (declared_pixels(source) or SMALL_PIXELS + 1) <= SMALL_PIXELS:
            return from_image(source, work)
        if self.waiting >= self.queue:
            raise TooManyPictures("too many pictures at once; try again in a moment")
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="picture")
        self.waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.pool, from_image, source, work)
        finally:
            self.waiting -= 1

    def close(self) -> None:
        """Let the threads go, dropping pictures still waiting (at server shutdown)."""
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
