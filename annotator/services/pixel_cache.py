"""The review page's raw pixels, decoded once per image and kept on the web host's disk.

The viewer windows the stored values itself, so it downloads them raw (see
``annotator.review_api.pixels``). Decoding a 2048x2500 16-bit PNG takes about 80 ms, on
every request; this cache keeps the decoded bytes in ``settings.PIXEL_CACHE_DIR`` under
the image's pixel SHA-256, so an entry never goes stale (equal pixels, equal bytes).
Entries are written through a temporary file and ``os.replace``, so concurrent requests
never read a half-written entry, and the least recently used are evicted beyond
``settings.PIXEL_CACHE_MAX_BYTES``. The cache is local on purpose: with S3 storage it
also saves the object download.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from annotator.imaging import decode_image
from annotator.models import Image


def raw_pixels(image: Image) -> tuple[bytes, int]:
    """The stored values of ``image`` as little-endian, row-major bytes and the bytes per
    pixel (2 for 9-16-bit images, 1 for 8-bit ones), decoded by the same code as every
    upload. MONOCHROME1 is not inverted here: the viewer inverts for display."""
    entry = Path(settings.PIXEL_CACHE_DIR) / f"{image.sha256}.raw"
    try:
        data = entry.read_bytes()
        os.utime(entry)  # recently used: evicted last
    except FileNotFoundError:
        with default_storage.open(image.file.name, "rb") as stored:
            pixels = decode_image(stored.read(), image.file.name, max_pixels=settings.MAX_IMAGE_PIXELS).pixels
        data = pixels.astype("<u2", copy=False).tobytes() if pixels.dtype.itemsize == 2 else pixels.tobytes()
        store(entry, data)
    return data, len(data) // (image.width * image.height)


def store(entry: Path, data: bytes) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    evict(entry.parent, settings.PIXEL_CACHE_MAX_BYTES - len(data))
    handle, temporary = tempfile.mkstemp(dir=entry.parent, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, entry)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def evict(directory: Path, keep_bytes: int) -> None:
    """Delete the least recently used entries until at most ``keep_bytes`` remain."""
    entries = []
    for path in directory.iterdir():
        try:
            stat = path.stat()
        except FileNotFoundError:  # evicted by a concurrent request
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= keep_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
