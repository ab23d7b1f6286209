"""Registering weights from a local file, schedules, and the training dashboard."""

import json
import tempfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from annotator.learning.selectors import policy_of
from annotator.learning.services.schedules import InvalidSchedule, schedule_training
from annotator.models import Membership, ModelStatus, ModelVersion, Role
from tests.factories import DatasetFactory, UserFactory
from tests.learning_fixtures import TINY_ENGINE, phantom_dataset

pytestmark = pytest.mark.django_db


def test_register_weights_evaluates_and_keeps_a_candidate(tmp_path, media_root):
    from ml_backend.registry import get_engine

    dataset = phantom_dataset(tmp_path)
    engine = get_engine("torchvision", category_ids=[1, 2], **TINY_ENGINE)
    checkpoint = engine.save(Path(tempfile.mkdtemp()) / "brought.pt")
    call_command("register_weights", str(checkpoint.path), "--dataset", dataset.name)
    version = ModelVersion.objects.get()
    assert version.status == ModelStatus.CANDIDATE and version.weights_sha256 == checkpoint.sha256
    assert version.metrics["n_images"] == 6 and "registered from brought.pt" in version.gate_reason
    assert (media_root / version.weights.name).read_bytes() == checkpoint.path.read_bytes()


def test_register_weights_refuses_what_does_not_fit(tmp_path, media_root):
    dataset = phantom_dataset(tmp_path)
    missing = tmp_path / "missing.pt"
    with pytest.raises(CommandError, match="missing.pt: no such file"):
        call_command("register_weights", str(missing), "--dataset", dataset.name)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CommandError, match="garbage.pt"):
        call_command("register_weights", str(garbage), "--dataset", dataset.name)
    assert not ModelVersion.objects.exists()


def test_schedules_are_celery_beat_tasks_and_the_label_rule_is_the_policy():
    dataset = DatasetFactory()
    call_command("schedule_training", "--dataset", dataset.name, "--cron", "0 2 * * 1", "--after-new-labels", "25")
    task = PeriodicTask.objects.get(task="annotator.tasks.scheduled_training")
    assert json.loads(task.args) == [dataset.pk] and task.crontab.hour == "2" and task.crontab.day_of_week == "1"
    assert policy_of(dataset).retrain_after_new_labels == 25
    schedule_training(dataset, every_minutes=30)  # replaces the dataset's schedule
    task = PeriodicTask.objects.get(task="annotator.tasks.scheduled_training")
    assert task.interval.every == 30 and task.crontab is None
    with pytest.raises(InvalidSchedule, match="five fields"):
        schedule_training(dataset, cron="every night")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("schedule_training", "--dataset", dataset.name, "--after-new-labels", "0")


def test_dashboard_page_and_state(client):
    dataset = DatasetFactory(name='<b>wrists</b>')
    admin = UserFactory()
    Membership.objects.create(dataset=dataset, user=admin, role=Role.ADMIN)
    client.force_login(admin)
    page = client.get(reverse("training-dashboard", args=[dataset.pk]))
    assert page.status_code == 200 and b"&lt;b&gt;wrists&lt;/b&gt;" in page.content and b"Train now" in page.content
    state = client.get(reverse("api-dashboard", args=[dataset.pk])).json()
    assert state["production"] is None and state["runs"] == [] and state["can_administer"] is True
    assert state["policy"]["gate_metric"] == "map50"
    client.force_login(UserFactory())  # not a member
    assert client.get(reverse("training-dashboard", args=[dataset.pk])).status_code == 404
