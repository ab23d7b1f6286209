"""Input and output serializers of the learning area: one output shape per entity, used by
the API and the training dashboard alike."""

from __future__ import annotations

import json

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework import serializers

from annotator.learning import dispatch
from annotator.learning.models import (
    ACTIVE_RUN_STATES,
    ModelVersion,
    QuickRead,
    RankedImage,
    Ranking,
    TrainingRun,
)
from annotator.learning.selectors import (
    gate_metric_value,
    labeled_count,
    new_labels_since_last_run,
    policy_of,
    pool_images,
    production_version,
    rollback_target,
    serving_version,
)
from annotator.learning.services.inference import inference_state
from annotator.web.serializers import StrictFieldsMixin

RECENT_RUNS = 20
STOP_REASONS = {
    "iterations": "all iterations done",
    "time_limit": "the policy's time limit was reached",
    "early_stop": "stopped early: validation mAP50 stopped improving",
}


class ModelVersionSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="name", read_only=True)
    architecture = serializers.SerializerMethodField()
    init = serializers.SerializerMethodField()
    map50 = serializers.SerializerMethodField()
    map = serializers.SerializerMethodField()
    froc_2 = serializers.SerializerMethodField()
    image_f1 = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id", "dataset", "name", "engine", "architecture", "init", "config", "category_ids",
            "weights_sha256", "parent", "training_run", "metrics", "map50", "map", "froc_2", "image_f1",
            "status", "gate_passed", "gate_reason", "created_at",
        ]
        read_only_fields = fields

    def get_architecture(self, version) -> str | None:
        return version.config.get("architecture")

    def get_init(self, version) -> str | None:
        """Where the weights' training started: random, imagenet, coco, a file, or the parent."""
        return version.config.get("init")

    def get_map50(self, version) -> float | None:
        return gate_metric_value(version.metrics, "map50")

    def get_map(self, version) -> float | None:
        return gate_metric_value(version.metrics, "map")

    def get_froc_2(self, version) -> float | None:
        return gate_metric_value(version.metrics, "froc_2")

    def get_image_f1(self, version) -> float | None:
        return gate_metric_value(version.metrics, "image_f1")


class TrainingRunSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    base_version = serializers.SlugRelatedField(slug_field="name", read_only=True)
    produced_version = serializers.SerializerMethodField()
    progress = serializers.FloatField(read_only=True)
    losses = serializers.JSONField(source="loss_history", read_only=True)
    snapshot = serializers.SerializerMethodField()
    active = serializers.SerializerMethodField()
    eta_seconds = serializers.SerializerMethodField()
    stop_reason = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id", "dataset", "state", "trigger", "requested_by", "base_version", "produced_version",
            "iteration", "total_iterations", "progress", "losses", "snapshot", "worker_host", "device",
            "error", "stop_reason", "eta_seconds", "cancel_requested", "active", "created_at", "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_produced_version(self, run) -> str | None:
        return getattr(getattr(run, "produced_version", None), "name", None)

    def get_snapshot(self, run) -> dict:
        return {"images": run.snapshot_images, "boxes": run.snapshot_boxes, "sha256": run.snapshot_sha256}

    def get_active(self, run) -> bool:
        return run.state in ACTIVE_RUN_STATES

    def get_stop_reason(self, run) -> str | None:
        """Why training ended, in words, with where it was (None while it goes)."""
        if run.state in ACTIVE_RUN_STATES:
            return None
        where = f"at {run.iteration}/{run.total_iterations}"
        if run.stop_reason:
            return f"{STOP_REASONS.get(run.stop_reason, run.stop_reason)} {where}"
        if run.error:
            return f"{run.error.splitlines()[0][:200]} {where}"
        return None

    def get_eta_seconds(self, run) -> float | None:
        """Time left while a run goes, from its pace so far (None until it has one)."""
        if run.state not in ACTIVE_RUN_STATES or not run.started_at or not run.iteration or not run.total_iterations:
            return None
        elapsed = (timezone.now() - run.started_at).total_seconds()
        return round(elapsed / run.iteration * max(run.total_iterations - run.iteration, 0), 1)


class RankedImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = RankedImage
        fields = ["image", "position", "score"]
        read_only_fields = fields


class RankingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Ranking
        fields = ["id", "dataset", "strategy", "model_version", "options", "image_count", "seconds", "created_at"]
        read_only_fields = fields


class ScheduleSerializer(serializers.ModelSerializer):
    """A django-celery-beat periodic task that names the dataset in its kwargs."""

    schedule = serializers.SerializerMethodField()

    class Meta:
        model = PeriodicTask
        fields = ["id", "name", "task", "enabled", "kwargs", "schedule", "last_run_at", "total_run_count"]
        read_only_fields = fields

    def get_schedule(self, task) -> str:
        return str(task.schedule)


class AnalyzeSerializer(StrictFieldsMixin, serializers.Serializer):
    dataset = serializers.IntegerField(min_value=1, help_text="whose production model reads the image")
    file = serializers.FileField(help_text="PNG (8 or 16 bit), JPEG or DICOM")


class AnalyzeBoxSerializer(serializers.Serializer):
    bbox = serializers.ListField(child=serializers.FloatField(), help_text="x, y, w, h in pixels")
    category = serializers.IntegerField(help_text="COCO category id")
    category_name = serializers.CharField()
    score = serializers.FloatField()


class QuickReadSerializer(serializers.ModelSerializer):
    """One analysis: ``queued`` until a worker has read the image, then ``done`` (with the
    fracture probability, the boxes at or above the display threshold and the serving
    version that read it) or ``failed`` (with the error)."""

    boxes = AnalyzeBoxSerializer(many=True, read_only=True)
    preview_url = serializers.SerializerMethodField()
    result_url = serializers.SerializerMethodField()

    class Meta:
        model = QuickRead
        fields = [
            "id", "dataset", "state", "file_name", "width", "height", "fracture_probability", "boxes",
            "serving_version", "error", "image", "preview_url", "result_url", "created_at", "finished_at",
        ]
        read_only_fields = fields

    def get_preview_url(self, read) -> str:
        return read.preview.url

    def get_result_url(self, read) -> str:
        return f"/api/review/quick-reads/{read.pk}/"


def schedules_for(dataset) -> list[dict]:
    schedules = []
    for task in PeriodicTask.objects.filter(task=dispatch.SCHEDULED).select_related("crontab", "interval"):
        if json.loads(task.args or "[]") == [dataset.pk]:
            schedules.append({"id": task.pk, "name": task.name, "enabled": task.enabled,
                              "schedule": str(task.crontab or task.interval)})
    return schedules


def dashboard_state(dataset) -> dict:
    """What the training dashboard shows, as one JSON-able dict."""
    policy = policy_of(dataset)
    production = production_version(dataset)
    runs = dataset.training_runs.select_related("requested_by", "base_version", "produced_version")[:RECENT_RUNS]
    versions = dataset.model_versions.select_related("parent").order_by("created_at", "id")
    return {
        "dataset": {"id": dataset.pk, "name": dataset.name},
        "production": ModelVersionSerializer(production).data if production else None,
        # proposals and ranking by the production version: {"proposals": {"done", "due"}, "ranking"}
        "inference": inference_state(production) if production else None,
        "serving_version": serving_version(dataset),
        "review_queue": pool_images(dataset).count(),
        "labeled": labeled_count(dataset),
        "labeled_since_last_run": new_labels_since_last_run(dataset),
        "policy": {
            "engine": policy.engine, "iterations": policy.iterations, "gate_metric": policy.gate_metric,
            "gate_margin": policy.gate_margin, "retrain_after_new_labels": policy.retrain_after_new_labels,
            "ranking_strategy": policy.ranking_strategy,
        },
        "runs": TrainingRunSerializer(runs, many=True).data,
        "versions": ModelVersionSerializer(versions, many=True).data,
        "rollback_to": getattr(rollback_target(dataset), "name", None),
        "schedules": schedules_for(dataset),
    }
