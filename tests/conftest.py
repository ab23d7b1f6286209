"""Fixtures shared by the whole suite.

The README's test command (platform/test.sh) sets PLATFORM_TEST_REQUIRE_SERVICES=1 and
points DATABASE_URL / CELERY_BROKER_URL at the local PostgreSQL and Redis: the suite then
refuses to run on anything else, so CI can never pass on a silent SQLite fallback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config):
    if os.environ.get("PLATFORM_TEST_REQUIRE_SERVICES") != "1":
        return
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(f"the suite must run on PostgreSQL, settings use {engine}")
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        raise pytest.UsageError(f"the suite must run on Redis, the broker is {settings.CELERY_BROKER_URL}")
    import redis

    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        raise pytest.UsageError(
            f"Redis at {settings.CELERY_BROKER_URL} is unreachable ({exc}); start it with "
            "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`"
        ) from exc


@pytest.fixture
def media_root(tmp_path, settings) -> Path:
    """A private MEDIA_ROOT for the test: files it writes are checked, then discarded."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture(autouse=True)
def pixel_cache_dir(tmp_path):
    """The review page's decoded-pixel cache, private to the test."""
    from django.test import override_settings

    with override_settings(PIXEL_CACHE_DIR=tmp_path / "pixel-cache"):
        yield tmp_path / "pixel-cache"


def stored_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="session")
def phantom_coco(tmp_path_factory) -> Path:
    """A tiny phantom COCO dataset (16 images, 128 px, 16-bit): annotations path."""
    from ml_backend.phantoms import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("phantoms"), 16, size=128, seed=7)
