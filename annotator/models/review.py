"""The review workflow's rows: who is reading which image (leases), how each reading went
(sessions and per-box outcomes), idempotent-save receipts, and quick reads.

Invariants held by the database itself:
- one lease row per image (``ImageLease.image`` is unique), so two readers asking for
  "next" at the same moment can never both hold the same image;
- one receipt per (user, Idempotency-Key), so a retried save is answered from its
  receipt instead of being applied twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotator.models.dataset import Annotation, Dataset, Image
from annotator.models.learning import ModelVersion

__all__ = [
    "BoxOutcome",
    "BoxOutcomeKind",
    "ImageLease",
    "QuickRead",
    "QuickReadState",
    "ReadingOutcome",
    "ReadingSession",
    "SaveReceipt",
]


class ImageLease(models.Model):
    """The reader currently holding an image. Expired leases may be taken over."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="lease")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_leases")
    expires_at = models.DateTimeField(db_index=True)
    claimed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"image {self.image_id} held by {self.user_id} until {self.expires_at:%H:%M:%S}"


class ReadingOutcome(models.TextChoices):
    LABELED = "labeled", "Labeled with boxes"
    NEGATIVE = "negative", "No fracture"
    SKIPPED = "skipped", "Skipped"


class ReadingSession(models.Model):
    """One reader's reading of one image, from opening it to finishing it."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="reading_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reading_sessions")
    opened_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=ReadingOutcome.choices, blank=True)
    skip_reason = models.TextField(blank=True)
    model_version = models.CharField(
        max_length=100, blank=True, help_text="the serving version whose proposals were shown"
    )

    class Meta:
        ordering = ["opened_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "user"],
                condition=Q(finished_at__isnull=True),
                name="one_open_reading_per_image_and_user",
            )
        ]
        indexes = [models.Index(fields=["user", "opened_at"])]

    def __str__(self) -> str:
        return f"{self.user_id} on image {self.image_id} ({self.outcome or 'open'})"

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.opened_at).total_seconds()


class BoxOutcomeKind(models.TextChoices):
    ACCEPTED = "accepted", "Proposal accepted unchanged"
    MOVED = "moved", "Proposal moved"
    RESIZED = "resized", "Proposal resized"
    RECLASSIFIED = "reclassified", "Proposal class changed"
    DELETED = "deleted", "Proposal deleted"
    ADDED = "added", "Box added by the reader"


class BoxOutcome(models.Model):
    """What became of one box by the end of a reading."""

    session = models.ForeignKey(ReadingSession, on_delete=models.CASCADE, related_name="box_outcomes")
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=BoxOutcomeKind.choices)
    model_version = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "annotation"], name="one_outcome_per_box_and_reading")
        ]

    def __str__(self) -> str:
        return f"box {self.annotation_id}: {self.kind}"


class SaveReceipt(models.Model):
    """The stored answer to a write sent with an ``Idempotency-Key`` header."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.UUIDField()
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_receipt_per_user_and_key")]

    def __str__(self) -> str:
        return f"receipt {self.key} ({self.status_code})"


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
