"""GET /healthz against the real database, broker and a real Celery worker process.

The full report goes to staff and to ``HEALTH_TOKEN`` holders; anyone else gets only
ok/degraded from a cached check (issue 16, item 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from annotator.web import health
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
TOKEN = "health-probe-token-for-tests"


@pytest.fixture(autouse=True)
def health_token(settings):
    settings.HEALTH_TOKEN = TOKEN
    health.cached_status.clear()
    yield
    health.cached_status.clear()


def details(client):
    return client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


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
        body = details(client).json()
        if body["workers"]["ok"] or time.monotonic() > deadline:
            break
        assert celery_worker_process.poll() is None, celery_worker_process.stderr.read().decode()
        time.sleep(1)
    response = details(client)
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
    response = details(client)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["database"]["ok"] and body["broker"]["ok"]
    assert body["workers"] == {"ok": False, "error": "RuntimeError: no Celery worker answered a ping",
                               "latency_ms": body["workers"]["latency_ms"]}


def test_healthz_reports_an_unreachable_broker(client, monkeypatch):
    from kombu import Connection

    from config.celery import app

    # nothing listens on port 1: a real connection attempt that fails
    monkeypatch.setattr(app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0"))
    response = details(client)
    assert response.status_code == 503
    body = response.json()
    assert not body["broker"]["ok"] and "Error" in body["broker"]["error"]
    assert body["workers"]["error"] == "broker unreachable"


def test_anonymous_healthz_is_cached_fast_and_says_only_ok_or_degraded(client, settings, monkeypatch):
    """A worker ping that takes a second, as with no worker listening: after the first
    check of the process, anonymous probes answer from the cache at once, and a stale
    cache is refreshed by one background check, however many probes arrive."""
    settings.HEALTH_CACHE_SECONDS = 1
    calls = []

    def slow_ping():
        calls.append(time.monotonic())
        time.sleep(1)
        raise RuntimeError("no Celery worker answered a ping (worker-7.internal)")

    monkeypatch.setattr(health, "check_workers", slow_ping)
    first = client.get("/healthz")
    assert (first.status_code, first.json()) == (503, {"status": "degraded"})
    time.sleep(1.1)  # stale now

    timings, answers = [], []

    def probe():
        started = time.perf_counter()
        answers.append(client.get("/healthz").json())
        timings.append(time.perf_counter() - started)

    probes = [threading.Thread(target=probe) for _ in range(16)]
    for thread in probes:
        thread.start()
    for thread in probes:
        thread.join()
    assert answers == [{"status": "degraded"}] * 16
    assert max(timings) <= 0.05, timings
    time.sleep(1.2)
    assert len(calls) == 2  # the first check, and one refresh for all 16 probes


def test_details_need_staff_or_the_token(client, settings, monkeypatch):
    monkeypatch.setattr(health, "check_workers", lambda: {"workers": ["worker-7@gpu.internal"]})
    assert set(client.get("/healthz").json()) == {"status"}
    assert set(client.get("/healthz", HTTP_AUTHORIZATION="Bearer wrong").json()) == {"status"}
    client.force_login(UserFactory())
    assert set(client.get("/healthz").json()) == {"status"}
    settings.HEALTH_TOKEN = ""
    assert set(client.get("/healthz", HTTP_AUTHORIZATION="Bearer ").json()) == {"status"}
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/healthz").json()["workers"]["workers"] == ["worker-7@gpu.internal"]
