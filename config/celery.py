"""The Celery application: configuration comes from Django settings (``CELERY_*``).

Queues: ``default`` for short bookkeeping, ``inference`` for proposals and ranking, and
``training`` for training runs, so that a GPU machine can run a worker that consumes only
``training`` and ``inference`` (see docs/architecture.md).
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("fracture_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue("default"), Queue("inference"), Queue("training")]
app.autodiscover_tasks()

