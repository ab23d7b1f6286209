"""GET /healthz against the real database, broker and a real Celery worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def celery_worker_process():
    """A real ``celery worker`` on the suite's broker, stopped after the test."""
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "--hostname", f"healthz-test-{os.getpid()}@%h", "-Q", "default", "--without-mingle",
         "--without-gossip", "--loglevel", "WARNING"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_healthz_reports_each_dependency_and_a_worker(client, celery_worker_process):
    deadline = time.monotonic() + 60
    while True:
        body = client.get("/healthz").json()
        if body["workers"]["ok"] or time.monotonic() > deadline:
            break
        assert celery_worker_process.poll() is None, celery_worker_process.stderr.read().decode()
        time.sleep(1)
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "vendor": "postgresql", "latency_ms": body["database"]["latency_ms"]}
    assert body["broker"]["ok"] and body["broker"]["transport"] == "redis"
    assert any(host.startswith(f"healthz-test-{os.getpid()}@") for host in body["workers"]["workers"])


def test_healthz_is_503_when_no_worker_answers(client, settings):
    settings.HEALTH_WORKER_TIMEOUT = 0.3
    from config.celery import app

    if app.control.ping(timeout=0.5):
        pytest.skip("another Celery worker is listening on the suite's broker")
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["database"]["ok"] and body["broker"]["ok"]
    assert body["workers"] == {"ok": False, "error": "RuntimeError: no Celery worker answered a ping",
                               "latency_ms": body["workers"]["latency_ms"]}


def test_healthz_reports_an_unreachable_broker(client, monkeypatch):
    from kombu import Connection

    from config.celery import app

    # nothing listens on port 1: a real connection attempt that fails
    monkeypatch.setattr(app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0"))
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert not body["broker"]["ok"] and "Error" in body["broker"]["error"]
    assert body["workers"]["error"] == "broker unreachable"
