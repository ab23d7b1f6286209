"""The review workflow's rows: who is reading which image (leases) and how each reading
went (sessions and per-box outcomes).

Invariants held by the database itself:
- one lease row per image (``ImageLease.image`` is unique), so two readers asking for
  "next" at the same moment can never both hold the same image.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotator.datasets.models import Annotation, Image

__all__ = [
    "BoxOutcome",
    "BoxOutcomeKind",
    "ImageLease",
    "ReadingOutcome",
    "ReadingSession",
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
    serving_version = models.CharField(
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
    serving_version = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "annotation"], name="one_outcome_per_box_and_reading")
        ]

    def __str__(self) -> str:
        return f"box {self.annotation_id}: {self.kind}"
