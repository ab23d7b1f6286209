"""A real Celery worker process on the suite's Redis and the test PostgreSQL database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from config.celery import app

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgresql://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(predicate, timeout: float, what: str, worker=None, interval: float = 0.5):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.log_tail()}")
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}" + (f"\n{worker.log_tail()}" if worker else ""))


class Worker:
    def __init__(self, process: subprocess.Popen, log: Path, hostname: str):
        self.process, self.log, self.hostname = process, log, hostname

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the worker and everything it started: no clean-up code runs."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)


@pytest.fixture
def celery_worker(transactional_db, media_root, tmp_path):
    app.control.purge()  # messages left by earlier tests name rows that no longer exist
    hostname = f"e2e-{os.getpid()}-{time.monotonic_ns()}@localhost"
    log = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "-Q", "default,inference,training", "--hostname", hostname,
             "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    worker = Worker(process, log, hostname)
    wait_for(lambda: app.control.ping(destination=[hostname], timeout=0.5), 60, "the worker to answer", worker)
    yield worker
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    app.control.purge()
