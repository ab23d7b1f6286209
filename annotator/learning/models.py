"""The learning loop's rows: model versions and their promotions, predictions, rankings,
training runs and each dataset's training policy.

Invariants held by the database itself (partial unique indexes, in PostgreSQL and SQLite):
- at most one production version per dataset;
- at most one queued-or-running training run per dataset (the conditional claim that
  keeps two runs from starting at once);
- one prediction per (image, model version), so a task delivered twice stores nothing twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotator.append_only import AppendOnlyQuerySet
from annotator.datasets.models import Dataset, Image

__all__ = [
    "QuickRead",
    "QuickReadState",
    "GateMetric",
    "ModelStatus",
    "ModelVersion",
    "Prediction",
    "Promotion",
    "PromotionKind",
    "Ranking",
    "RankedImage",
    "RunState",
    "RunTrigger",
    "LearningPolicy",
    "TrainingRun",
    "ACTIVE_RUN_STATES",
]


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"


def weights_storage_path(version: ModelVersion, filename: str) -> str:
    return f"models/{version.dataset_id}/{filename}"


class ModelVersion(models.Model):
    """One set of weights with everything needed to trust it again later."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="model_versions")
    name = models.CharField(max_length=100, help_text="e.g. frcnn-mbv3-0007")
    engine = models.CharField(max_length=50)
    config = models.JSONField(default=dict, help_text="the engine config the weights were built with")
    category_ids = models.JSONField(default=list, help_text="COCO category ids, in head column order")
    weights = models.FileField(upload_to=weights_storage_path, max_length=500)
    weights_sha256 = models.CharField(max_length=64)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    training_run = models.OneToOneField(
        "TrainingRun", null=True, blank=True, on_delete=models.PROTECT, related_name="produced_version"
    )
    metrics = models.JSONField(
        null=True, blank=True, help_text="the ML backend's full evaluation on the frozen validation split"
    )
    status = models.CharField(max_length=12, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    gate_passed = models.BooleanField(null=True, blank=True)
    gate_reason = models.TextField(blank=True)
    inference_requested_at = models.DateTimeField(
        null=True, blank=True,
        help_text="when proposals and ranking of the pool were last requested for it (the sweeper re-requests "
        "what is still missing after a while)",
    )
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="model_version_name_unique"),
            models.UniqueConstraint(
                fields=["dataset"],
                condition=Q(status="production"),
                name="one_production_version_per_dataset",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class PromotionKind(models.TextChoices):
    GATE = "gate", "Promoted by the gate"
    MANUAL = "manual", "Promoted by an admin"
    ROLLBACK = "rollback", "Rolled back"


class Promotion(models.Model):
    """Append-only log of what was in production when. Its ``serial`` makes the serving
    version string (``ModelVersion.name`` + ``.p<serial>``) change on every promotion,
    rollbacks included, so Label Studio re-predicts after each one."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="promotions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    previous_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    serial = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=PromotionKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["dataset", "-serial"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "serial"], name="promotion_serial_unique")
        ]

    def __str__(self) -> str:
        return self.serving_version

    @property
    def serving_version(self) -> str:
        return f"{self.model_version.name}.p{self.serial}"


class Prediction(models.Model):
    """Everything one model version said about one image: every candidate box with its
    class probabilities, the image-level fracture probability and the embedding used for
    diversity. Proposals shown to readers are made from it."""

    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    boxes = models.JSONField(help_text="[{bbox: [x, y, w, h], category: coco_id, score, probs: [...]}]")
    flipped_boxes = models.JSONField(
        null=True, blank=True, help_text="the same under horizontal-flip TTA, in original pixels"
    )
    fracture_probability = models.FloatField(help_text="the highest box score, 0 with no box")
    embedding = models.BinaryField(help_text="float32 little-endian vector")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="one_prediction_per_version")
        ]

    def __str__(self) -> str:
        return f"{self.model_version.name} on image {self.image_id}"


class Ranking(models.Model):
    """One ordering of a dataset's unlabeled pool by a strategy and a model version."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="rankings")
    strategy = models.CharField(max_length=40)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="rankings"
    )
    options = models.JSONField(default=dict, blank=True)
    image_count = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.strategy} by {self.model_version or 'no model'} ({self.created_at:%Y-%m-%d %H:%M})"


class RankedImage(models.Model):
    ranking = models.ForeignKey(Ranking, on_delete=models.CASCADE, related_name="entries")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="ranked_entries")
    position = models.PositiveIntegerField(help_text="0 = read first")
    score = models.FloatField(help_text="the strategy's informativeness score")

    class Meta:
        ordering = ["ranking", "position"]
        constraints = [
            models.UniqueConstraint(fields=["ranking", "image"], name="image_once_per_ranking"),
            models.UniqueConstraint(fields=["ranking", "position"], name="position_once_per_ranking"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} image {self.image_id} ({self.score:.3f})"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATES = (RunState.QUEUED, RunState.RUNNING)


class RunTrigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    SCHEDULE = "schedule", "Schedule"
    THRESHOLD = "threshold", "New-label threshold"


class TrainingRun(models.Model):
    """One training run, from its frozen snapshot to the version it produced."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="training_runs")
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.QUEUED)
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    base_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    snapshot = models.FileField(max_length=500, blank=True, help_text="frozen COCO file it trains on")
    snapshot_sha256 = models.CharField(max_length=64, blank=True)
    snapshot_images = models.PositiveIntegerField(default=0)
    snapshot_boxes = models.PositiveIntegerField(default=0)
    labeled_at_start = models.PositiveIntegerField(
        default=0, help_text="labeled images when it was queued (for the new-label rule)"
    )
    iteration = models.PositiveIntegerField(default=0)
    total_iterations = models.PositiveIntegerField(default=0)
    loss_history = models.JSONField(default=list, blank=True)
    worker_host = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=200, blank=True, help_text="where it trained, e.g. cpu or cuda:0 (GPU name)")
    task_id = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    stop_reason = models.CharField(
        max_length=20, blank=True, help_text="why training stopped: iterations, time_limit or early_stop"
    )
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset"],
                condition=Q(state__in=["queued", "running"]),
                name="one_active_training_run_per_dataset",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} on {self.dataset} ({self.state})"

    @property
    def progress(self) -> float:
        return self.iteration / self.total_iterations if self.total_iterations else 0.0


class GateMetric(models.TextChoices):
    MAP50 = "map50", "mAP@0.5"
    MAP = "map", "mAP@[.5:.95]"
    FROC2 = "froc_2", "FROC sensitivity at 2 FP/image"
    IMAGE_F1 = "image_f1", "Image-level F1"


class LearningPolicy(models.Model):
    """How a dataset's learning loop runs: training, the promotion gate, how the pool is
    ranked, and which proposals readers see."""

    dataset = models.OneToOneField(Dataset, on_delete=models.CASCADE, related_name="learning_policy")
    engine = models.CharField(max_length=50, default="torchvision")
    engine_config = models.JSONField(default=dict, blank=True)
    iterations = models.PositiveIntegerField(default=300)
    time_limit_seconds = models.PositiveIntegerField(default=1800)
    training_queue = models.CharField(
        max_length=100, default="training",
        help_text="the Celery queue its runs go to: a GPU worker on another machine consumes e.g. 'training-gpu'",
    )
    gate_metric = models.CharField(max_length=10, choices=GateMetric.choices, default=GateMetric.MAP50)
    gate_margin = models.FloatField(
        default=0.01, help_text="a candidate passes when metric >= production's metric - margin"
    )
    gate_floor = models.FloatField(
        default=0.1,
        help_text="a candidate is never promoted below this value of the gate metric, even when there is "
        "no production version to compare with",
    )
    retrain_after_new_labels = models.PositiveIntegerField(
        null=True, blank=True, help_text="queue a run once this many images are labeled since the last one"
    )
    ranking_strategy = models.CharField(max_length=40, default="ranked_batch")
    display_threshold = models.FloatField(default=0.5, help_text="proposals below this score are not shown")

    class Meta:
        verbose_name_plural = "learning policies"

    def __str__(self) -> str:
        return f"policy of {self.dataset}"


class QuickReadState(models.TextChoices):
    QUEUED = "queued", "Queued"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class QuickRead(models.Model):
    """One uploaded X-ray analysed by the dataset's production model."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="quick_reads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    file_name = models.CharField(max_length=500)
    upload = models.FileField(upload_to="quick_reads/", max_length=500, help_text="the file as uploaded")
    preview = models.FileField(upload_to="quick_reads/", max_length=500, help_text="8-bit windowed PNG")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    state = models.CharField(max_length=8, choices=QuickReadState.choices, default=QuickReadState.QUEUED)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    serving_version = models.CharField(max_length=100, blank=True, help_text="the serving version that read it")
    fracture_probability = models.FloatField(null=True, blank=True)
    boxes = models.JSONField(default=list, blank=True, help_text="[{bbox: [x, y, w, h], category, score}]")
    error = models.TextField(blank=True)
    image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="set when the reader added the upload to the dataset for review",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"quick read {self.pk} of {self.file_name} ({self.state})"
