"""Liveness of what the platform depends on: the database, the broker and the workers.

``platform_health`` checks all three now and says how each went (host names, errors):
for admins and holders of ``HEALTH_TOKEN`` only. Anyone else gets ``public_status``:
``ok`` or ``degraded`` from the last check, refreshed in a background thread once it is
older than ``HEALTH_CACHE_SECONDS``, so an anonymous probe costs no worker ping (the
first probe of a web process waits for the first check).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection

from config.celery import app


def _timed(check: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    try:
        result = {"ok": True, **check()}
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_broker() -> dict:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport_cls if isinstance(conn.transport_cls, str) else conn.transport.driver_name}


def check_workers() -> dict:
    replies = app.control.ping(timeout=settings.HEALTH_WORKER_TIMEOUT)
    hosts = sorted(host for reply in replies for host in reply)
    if not hosts:
        raise RuntimeError("no Celery worker answered a ping")
    return {"workers": hosts}


def platform_health() -> dict:
    report = {
        "database": _timed(check_database),
        "broker": _timed(check_broker),
    }
    report["workers"] = (
        _timed(check_workers)
        if report["broker"]["ok"]
        else {"ok": False, "error": "broker unreachable", "latency_ms": 0.0}
    )
    report["status"] = "ok" if all(part["ok"] for part in report.values()) else "degraded"
    return report


class _CachedStatus:
    """The last ``platform_health`` status of this process. Checks run in a thread of
    their own (with its own database connection), one at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._status: str | None = None
        self._checked_at = 0.0
        self._refresh: threading.Thread | None = None

    def _check(self) -> None:
        status = "degraded"
        try:
            status = platform_health()["status"]
        finally:
            connection.close()
            with self._lock:
                self._status, self._checked_at, self._refresh = status, time.monotonic(), None

    def get(self) -> str:
        with self._lock:
            stale = time.monotonic() - self._checked_at >= settings.HEALTH_CACHE_SECONDS
            if stale and self._refresh is None:
                self._refresh = threading.Thread(target=self._check, name="healthz-check", daemon=True)
                self._refresh.start()
            status, refresh = self._status, self._refresh
        if status is None and refresh is not None:
            refresh.join()  # the first probe of this process waits for the first check
            status = self._status
        return status

    def clear(self) -> None:
        """Forget the last check (tests)."""
        with self._lock:
            self._status, self._checked_at = None, 0.0


cached_status = _CachedStatus()


def public_status() -> str:
    """``ok`` or ``degraded``, from the cached check."""
    return cached_status.get()
