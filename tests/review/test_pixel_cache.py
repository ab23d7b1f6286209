"""The review page's decoded-pixel cache: served from disk after the first decode,
never half-written, least recently used evicted first."""

import os
import time

import numpy as np
import pytest
from django.core.files.storage import default_storage

from annotator.review.pixel_cache import evict, raw_pixels
from tests.factories import ImageFactory, unique_pixels

pytestmark = pytest.mark.django_db


def test_second_read_comes_from_the_cache_not_the_stored_file(media_root, pixel_cache_dir):
    image = ImageFactory(pixels=unique_pixels(3))
    first, bytes_per_pixel = raw_pixels(image)
    assert bytes_per_pixel == 1 and np.array_equal(np.frombuffer(first, np.uint8).reshape(48, 64), unique_pixels(3))
    assert [p.name for p in pixel_cache_dir.iterdir()] == [f"{image.sha256}.u8"]
    default_storage.delete(image.file.name)  # a decode would now fail
    assert raw_pixels(image) == (first, 1)


def test_sixteen_bit_values_are_cached_little_endian(media_root, pixel_cache_dir):
    pixels = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 13 % 4096).astype(np.uint16)
    image = ImageFactory(pixels=pixels, bit_depth=16)
    raw_pixels(image)
    data, bytes_per_pixel = raw_pixels(image)
    assert bytes_per_pixel == 2 and np.array_equal(np.frombuffer(data, "<u2").reshape(48, 64), pixels)


def test_eviction_removes_least_recently_used_entries_first(tmp_path):
    for age, name in enumerate(["newest", "middle", "oldest"]):
        path = tmp_path / name
        path.write_bytes(b"x" * 100)
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
    evict(tmp_path, keep_bytes=150)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newest"]


def test_a_full_cache_makes_room_for_the_new_entry(media_root, pixel_cache_dir, settings):
    settings.PIXEL_CACHE_MAX_BYTES = 64 * 48 + 10  # room for one 8-bit 64x48 image
    first, second = ImageFactory(pixels=unique_pixels(1)), ImageFactory(pixels=unique_pixels(2))
    raw_pixels(first)
    raw_pixels(second)
    assert [p.name for p in pixel_cache_dir.iterdir()] == [f"{second.sha256}.u8"]


def test_eviction_spares_files_being_written_and_removes_abandoned_ones(tmp_path):
    for name, age in (("entry", 50), (".partial-live", 0), (".partial-dead", 3600)):
        path = tmp_path / name
        path.write_bytes(b"x" * 100)
        os.utime(path, (time.time() - age, time.time() - age))
    evict(tmp_path, keep_bytes=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".partial-live"]


def test_a_damaged_entry_is_decoded_again_and_replaced(media_root, pixel_cache_dir):
    image = ImageFactory(pixels=unique_pixels(4))
    good, _ = raw_pixels(image)
    (pixel_cache_dir / f"{image.sha256}.u8").write_bytes(b"truncated")
    assert raw_pixels(image) == (good, 1)
    assert (pixel_cache_dir / f"{image.sha256}.u8").read_bytes() == good


def test_a_cache_that_cannot_be_written_still_serves_the_pixels(media_root, settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    settings.PIXEL_CACHE_DIR = blocker / "cache"
    image = ImageFactory(pixels=unique_pixels(6))
    data, _ = raw_pixels(image)
    assert np.array_equal(np.frombuffer(data, np.uint8).reshape(48, 64), unique_pixels(6))


def test_a_zero_budget_turns_the_cache_off(media_root, pixel_cache_dir, settings):
    settings.PIXEL_CACHE_MAX_BYTES = 0
    raw_pixels(ImageFactory(pixels=unique_pixels(7)))
    assert not pixel_cache_dir.exists()
