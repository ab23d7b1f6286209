"""Publishing by name: each task goes to its queue, and a policy can send its training
runs to a queue of its own (a GPU worker on another machine)."""

import json

import pytest
import redis
from django.conf import settings

from annotator.learning import dispatch
from annotator.learning.selectors import policy_of
from annotator.learning.services.runs import request_training_run
from annotator.models import RunTrigger
from config.celery import app
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield client
    client.delete("training-gpu-test")


def test_each_task_name_routes_to_its_queue():
    route = app.amqp.router.route
    assert route({}, dispatch.TRAIN)["queue"].name == "training"
    for name in (dispatch.PROPOSE, dispatch.RANK, dispatch.ANALYZE):
        assert route({}, name)["queue"].name == "inference"


def test_a_policy_sends_its_runs_to_its_own_queue(broker):
    dataset = DatasetFactory()
    policy = policy_of(dataset)
    policy.training_queue = "training-gpu-test"
    policy.save()
    run = request_training_run(dataset, RunTrigger.MANUAL)
    (message,) = broker.lrange("training-gpu-test", 0, -1)
    body = json.loads(message)
    assert body["headers"]["task"] == dispatch.TRAIN and body["headers"]["argsrepr"] == f"[{run.pk}]"
