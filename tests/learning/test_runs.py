"""Training runs: one at a time, claims, the sweeper, the label rule and the faults that
must lose nothing (broker down, duplicate delivery, a crash), on real Redis/PostgreSQL.

The tasks run in this process here (``task.apply``); tests/e2e runs them in a real worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.learning.selectors import policy_of
from annotator.learning.services import execution as run_execution
from annotator.learning.services.runs import (
    RunAlreadyActive,
    cancel_run,
    claim_run,
    mark_succeeded,
    record_progress,
    request_runs_over_threshold,
    request_training_run,
    sweep_stale_runs,
)
from annotator.learning.tasks import propose_images, scheduled_training, train_model
from annotator.models import (
    Annotation,
    AnnotationRevision,
    ModelStatus,
    ModelVersion,
    Prediction,
    ReviewStatus,
    Role,
    RunState,
    RunTrigger,
    TrainingRun,
)
from config.celery import app
from tests.factories import DatasetFactory, MembershipFactory
from tests.learning_fixtures import phantom_dataset, random_weights_version

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_queues():
    """Tasks published here are run in-process by the test; drop the broker's copies."""
    yield
    app.control.purge()


@pytest.fixture
def unreachable_broker():
    """Point publishing at a port where nothing listens (a real failed connection)."""
    previous = app.conf.broker_write_url
    app.conf.broker_write_url = "redis://127.0.0.1:1/0"
    app.amqp._producer_pool = None
    yield
    app.conf.broker_write_url = previous
    app.amqp._producer_pool = None


def annotations_state():
    return (
        sorted(Annotation.objects.values_list("pk", "x", "y", "w", "h", "version", "is_deleted", "source")),
        AnnotationRevision.objects.count(),
    )


def test_only_one_active_run_per_dataset():
    dataset = DatasetFactory()
    first = request_training_run(dataset, RunTrigger.MANUAL)
    with pytest.raises(RunAlreadyActive, match=f"run {first.pk} is already queued"):
        request_training_run(dataset, RunTrigger.SCHEDULE)
    assert TrainingRun.objects.filter(dataset=dataset).count() == 1
    assert scheduled_training.apply(args=[dataset.pk]).get().startswith("skipped")
    other = request_training_run(DatasetFactory(), RunTrigger.MANUAL)  # other datasets are independent
    assert other.state == RunState.QUEUED


def test_a_run_is_claimed_once():
    run = request_training_run(DatasetFactory(), RunTrigger.MANUAL)
    assert claim_run(run.pk, "task-a") is True
    assert claim_run(run.pk, "task-b") is False
    run.refresh_from_db()
    assert (run.state, run.task_id) == (RunState.RUNNING, "task-a") and run.worker_host


def test_sweeper_fails_runs_whose_worker_stopped_reporting(settings):
    settings.TRAINING_HEARTBEAT_TIMEOUT = 60
    dataset = DatasetFactory()
    run = request_training_run(dataset, RunTrigger.MANUAL)
    claim_run(run.pk)
    assert sweep_stale_runs() == []  # heartbeat is fresh
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=61))
    assert sweep_stale_runs() == [run.pk]
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "no heartbeat for 60 s" in run.error and run.finished_at
    assert request_training_run(dataset, RunTrigger.SCHEDULE).state == RunState.QUEUED  # not blocked


def test_train_now_with_the_broker_down_leaves_no_phantom_run(unreachable_broker):
    member = MembershipFactory(role=Role.ADMIN)
    client = APIClient()
    client.force_authenticate(member.user)
    response = client.post(reverse("api-train-now", args=[member.dataset.pk]))
    assert response.status_code == 503
    assert "broker is unreachable, nothing was queued" in response.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_train_now_permissions_and_conflict():
    admin = MembershipFactory(role=Role.ADMIN)
    reader = MembershipFactory(role=Role.RADIOLOGIST, dataset=admin.dataset)
    client = APIClient()
    client.force_authenticate(reader.user)
    assert client.post(reverse("api-train-now", args=[admin.dataset.pk])).status_code == 403
    client.force_authenticate(admin.user)
    assert client.post(reverse("api-train-now", args=[admin.dataset.pk])).status_code == 201
    again = client.post(reverse("api-train-now", args=[admin.dataset.pk]))
    assert again.status_code == 409 and "already queued" in again.json()["detail"]
    client.force_authenticate(MembershipFactory(role=Role.ADMIN).user)  # admin elsewhere
    assert client.post(reverse("api-train-now", args=[admin.dataset.pk])).status_code == 404
    assert TrainingRun.objects.count() == 1


def test_label_threshold_queues_one_run(tmp_path, media_root):
    dataset = phantom_dataset(tmp_path, pool=4)
    policy = policy_of(dataset)
    policy.retrain_after_new_labels = 3
    policy.save()
    last = request_training_run(dataset, RunTrigger.MANUAL)
    TrainingRun.objects.filter(pk=last.pk).update(state=RunState.SUCCEEDED)
    pool = list(dataset.images.filter(status=ReviewStatus.UNLABELED))
    dataset.images.filter(pk__in=[i.pk for i in pool[:2]]).update(status=ReviewStatus.NEGATIVE)
    assert request_runs_over_threshold() == []  # 2 new labels < 3
    dataset.images.filter(pk=pool[2].pk).update(status=ReviewStatus.NEGATIVE)
    (queued,) = request_runs_over_threshold()
    assert queued.trigger == RunTrigger.THRESHOLD and queued.labeled_at_start == last.labeled_at_start + 3
    assert request_runs_over_threshold() == []  # never two at once


@pytest.mark.slow
def test_a_run_trains_registers_gates_and_a_second_delivery_changes_nothing(
    tmp_path, media_root, django_capture_on_commit_callbacks, monkeypatch
):
    dataset = phantom_dataset(tmp_path)
    before = annotations_state()
    run = request_training_run(dataset, RunTrigger.MANUAL)
    versions_when_finished = []

    def succeed_and_look(run_id, **fields):
        versions_when_finished.append(list(ModelVersion.objects.values_list("status", "gate_passed")))
        mark_succeeded(run_id, **fields)

    monkeypatch.setattr(run_execution, "mark_succeeded", succeed_and_look)
    with django_capture_on_commit_callbacks(execute=False):
        assert "produced" in train_model.apply(args=[run.pk]).get()
        assert "nothing to do" in train_model.apply(args=[run.pk]).get()  # delivered twice
    run.refresh_from_db()
    version = ModelVersion.objects.get()
    assert run.state == RunState.SUCCEEDED and run.iteration == run.total_iterations == 6
    assert run.stop_reason == "iterations" and run.device.startswith("cpu")
    assert len(run.loss_history) == 6 and run.snapshot_sha256 and run.snapshot_images == 8
    assert version.training_run == run and version.parent is None
    assert {"map50", "map", "froc", "image_level", "confusion"} <= set(version.metrics)
    assert version.gate_passed and version.status == ModelStatus.PRODUCTION  # nothing to beat yet
    # the run is marked succeeded in the commit that promotes its version, not before it
    assert versions_when_finished == [[(ModelStatus.PRODUCTION, True)]]
    assert media_root.joinpath(version.weights.name).stat().st_size > 0
    assert annotations_state() == before  # training never touches annotations


def test_a_crash_fails_the_run_with_its_error_and_the_next_one_still_runs(tmp_path, media_root):
    dataset = phantom_dataset(tmp_path)
    policy = policy_of(dataset)
    policy.engine_config = {**policy.engine_config, "architecture": "no-such-net"}
    policy.save()
    run = request_training_run(dataset, RunTrigger.SCHEDULE)
    train_model.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "no-such-net" in run.error and run.finished_at
    assert not ModelVersion.objects.exists()
    assert scheduled_training.apply(args=[dataset.pk]).get().startswith("queued run")


@pytest.mark.slow
def test_proposals_delivered_twice_store_nothing_twice(tmp_path, media_root, django_capture_on_commit_callbacks):
    dataset = phantom_dataset(tmp_path, pool=6)
    version = random_weights_version(dataset, status=ModelStatus.PRODUCTION)
    policy = policy_of(dataset)
    policy.display_threshold = 0.0  # random weights score low; show every candidate
    policy.save()
    propose_images.apply(args=[dataset.pk, version.pk])
    first = (Prediction.objects.count(), Annotation.objects.filter(source="model", is_deleted=False).count())
    propose_images.apply(args=[dataset.pk, version.pk])
    assert (Prediction.objects.count(), Annotation.objects.filter(source="model", is_deleted=False).count()) == first
    assert first[0] == dataset.images.exclude(split="val").count()  # every sampleable image
    assert first[1] > 0
    assert not Annotation.objects.filter(source="model", image__split="val").exists()
    assert set(dataset.images.filter(split="pool").values_list("status", flat=True)) <= {"proposed", "unlabeled"}


def test_cancel_stops_a_queued_run_at_once_and_a_running_one_at_its_next_iteration():
    queued = request_training_run(DatasetFactory(), RunTrigger.MANUAL)
    assert cancel_run(queued).state == RunState.CANCELLED
    running = request_training_run(DatasetFactory(), RunTrigger.MANUAL)
    claim_run(running.pk)
    assert record_progress(running.pk, 1, 10, {"loss": 1.0}) is False
    running = cancel_run(running)
    assert running.state == RunState.RUNNING and running.cancel_requested
    assert record_progress(running.pk, 2, 10, {"loss": 0.9}) is True  # the training loop stops here
    running.refresh_from_db()
    assert running.iteration == 2 and [p["iteration"] for p in running.loss_history] == [1, 2]


def test_a_cancelled_running_run_ends_cancelled_without_a_version(tmp_path, media_root):
    dataset = phantom_dataset(tmp_path, iterations=50)
    run = request_training_run(dataset, RunTrigger.MANUAL)
    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)  # as if clicked mid-run
    assert "cancelled" in train_model.apply(args=[run.pk]).get()
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and run.iteration == 1
    assert not ModelVersion.objects.exists()
