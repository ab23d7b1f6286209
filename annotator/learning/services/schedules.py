"""Admin schedules for retraining, stored as django-celery-beat periodic tasks."""

from __future__ import annotations

import json

from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from annotator.datasets.models import Dataset
from annotator.errors import InvalidInput
from annotator.learning import dispatch
from annotator.learning.models import LearningPolicy


class InvalidSchedule(InvalidInput):
    """A schedule that cannot be stored; the message says why."""


def schedule_training(dataset: Dataset, *, cron: str | None = None, every_minutes: int | None = None) -> PeriodicTask:
    """Create or replace the dataset's retraining schedule: a five-field crontab
    (``"0 2 * * *"``, UTC) or an interval. Editable afterwards in the admin."""
    if (cron is None) == (every_minutes is None):
        raise InvalidSchedule("give either a crontab or an interval in minutes")
    if cron is not None:
        fields = cron.split()
        if len(fields) != 5:
            raise InvalidSchedule(f"crontab {cron!r} must have five fields: minute hour day month weekday")
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
            day_of_week=day_of_week, timezone="UTC",
        )
        when = {"crontab": schedule, "interval": None}
    else:
        if every_minutes < 1:
            raise InvalidSchedule("the interval must be at least one minute")
        schedule, _ = IntervalSchedule.objects.get_or_create(every=every_minutes, period=IntervalSchedule.MINUTES)
        when = {"interval": schedule, "crontab": None}
    task, _ = PeriodicTask.objects.update_or_create(
        name=f"retrain dataset {dataset.pk}",
        defaults={"task": dispatch.SCHEDULED, "args": json.dumps([dataset.pk]), "enabled": True, **when},
    )
    return task


def retrain_after_new_labels(dataset: Dataset, count: int) -> LearningPolicy:
    """The per-dataset rule: queue a run once ``count`` images are labeled since the last
    one (checked by the beat's sweeper). Creates the dataset's policy if it has none."""
    if count < 1:
        raise InvalidSchedule("the number of new labels must be at least 1")
    policy, _ = LearningPolicy.objects.update_or_create(dataset=dataset, defaults={"retrain_after_new_labels": count})
    return policy
