"""Reads of the learning area: the policy lookup never writes; schedules are visible only
to members of the dataset they name."""

import json

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from annotator.learning import dispatch
from annotator.learning.selectors import policy_of, schedule_dataset_id, visible_schedules
from annotator.models import LearningPolicy, Role
from tests.factories import DatasetFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_policy_of_reads_without_writing():
    dataset = DatasetFactory()
    policy = policy_of(dataset)
    assert policy.pk is None and policy.ranking_strategy == "ranked_batch"
    assert not LearningPolicy.objects.exists()
    LearningPolicy.objects.create(dataset=dataset, iterations=7)
    assert policy_of(dataset).iterations == 7


def test_schedules_are_visible_to_members_of_their_dataset_only():
    mine, theirs = DatasetFactory(), DatasetFactory()
    user = UserFactory()
    MembershipFactory(dataset=mine, user=user, role=Role.VIEWER)
    every = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    by_args = PeriodicTask.objects.create(name="a", task=dispatch.SCHEDULED, args=json.dumps([mine.pk]), interval=every)
    by_kwargs = PeriodicTask.objects.create(name="b", task="other.task", kwargs=json.dumps({"dataset_id": mine.pk}),
                                            interval=every)
    PeriodicTask.objects.create(name="c", task=dispatch.SCHEDULED, args=json.dumps([theirs.pk]), interval=every)
    PeriodicTask.objects.create(name="d", task="other.task", args=json.dumps([mine.pk]), interval=every)  # names none
    PeriodicTask.objects.create(name="e", task=dispatch.SCHEDULED, args="not json", interval=every)
    assert [t.name for t in visible_schedules(user)] == [by_args.name, by_kwargs.name]
    assert schedule_dataset_id(PeriodicTask(task=dispatch.SCHEDULED, args="[true]")) is None
