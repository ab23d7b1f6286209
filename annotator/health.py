"""Liveness of what the platform depends on: the database, the broker and the workers."""

from __future__ import annotations

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
    report["status"] = "ok" if all(part["ok"] for part in report.values()) else "error"
    return report
