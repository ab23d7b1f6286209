"""Celery tasks of the review area: one-call adapters run by the beat."""

from __future__ import annotations

from celery import shared_task

RELEASE_READINGS = "annotator.tasks.release_abandoned_readings"


@shared_task(name=RELEASE_READINGS)
def release_abandoned_readings() -> int:
    from annotator.review.services.reading import release_abandoned_readings as release

    return release()
