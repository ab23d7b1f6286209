"""The review page's raw pixels, decoded once per image and kept on the web host's disk.

The viewer windows the stored values itself, so it downloads them raw (see
``annotator.review.api.pixels``). Decoding a 2048x2500 16-bit PNG takes about 80 ms, on
every request; this cache keeps the decoded bytes in ``settings.PIXEL_CACHE_DIR`` under
the image's pixel SHA-256 (which covers dtype and shape), so an entry never goes stale.
Entries are written through a temporary file and ``os.replace``, so concurrent requests
never read a half-written entry, and the least recently used are evicted beyond
``settings.PIXEL_CACHE_MAX_BYTES`` (0 turns the cache off). The cache only ever saves
time: an entry of the wrong length is decoded again, and a failing cache directory is
logged and bypassed. It is local on purpose: with S3 storage it also saves the download.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from annotator.datasets.models import Image
from annotator.imaging import decode_image

logger = logging.getLogger(__name__)
PARTIAL_PREFIX = ".partial-"
STALE_PARTIAL_S = 600  # a temporary file this old belongs to a writer that died


def bytes_per_pixel(image: Image) -> int:
    return 2 if image.bit_depth > 8 else 1


def raw_pixels(image: Image) -> tuple[bytes, int]:
    """The stored values of ``image`` as little-endian, row-major bytes and the bytes per
    pixel (2 for 9-16-bit images, 1 for 8-bit ones), decoded by the same code as every
    upload. MONOCHROME1 is not inverted here: the viewer inverts for display."""
    depth = bytes_per_pixel(image)
    expected = image.width * image.height * depth
    entry = Path(settings.PIXEL_CACHE_DIR) / f"{image.sha256}.u{8 * depth}"
    data = cached(entry, expected)
    if data is None:
        with default_storage.open(image.file.name, "rb") as stored:
            pixels = decode_image(stored.read(), image.file.name, max_pixels=settings.MAX_IMAGE_PIXELS).pixels
        data = pixels.astype("<u2", copy=False).tobytes() if depth == 2 else pixels.astype("u1", copy=False).tobytes()
        if len(data) <= settings.PIXEL_CACHE_MAX_BYTES:
            try:
                store(entry, data)
            except OSError as exc:
                logger.warning("pixel cache: could not write %s: %s", entry, exc)
    return data, depth


def cached(entry: Path, expected_length: int) -> bytes | None:
    """The entry's bytes if it holds ``expected_length`` of them, marked recently used."""
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    if len(data) != expected_length:
        return None
    try:
        os.utime(entry)
    except OSError:  # evicted meanwhile: the bytes read are still right
        pass
    return data


def store(entry: Path, data: bytes) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    evict(entry.parent, settings.PIXEL_CACHE_MAX_BYTES - len(data))
    handle, temporary = tempfile.mkstemp(dir=entry.parent, prefix=PARTIAL_PREFIX)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, entry)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def evict(directory: Path, keep_bytes: int) -> None:
    """Delete the least recently used entries until at most ``keep_bytes`` remain, and
    temporary files left by writers that died; never another writer's file in progress."""
    entries = []
    now = time.time()
    for path in directory.iterdir():
        try:
            stat = path.stat()
        except FileNotFoundError:  # evicted or renamed by a concurrent request
            continue
        if path.name.startswith(PARTIAL_PREFIX):
            if now - stat.st_mtime > STALE_PARTIAL_S:
                path.unlink(missing_ok=True)
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= keep_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
