"""The audit log: the append-only, UTC record of who viewed images, changed boxes,
promoted or rolled back versions, exported data, signed in, and who was refused.
Written only through ``annotator.audit.services.record_event``.

The dataset is referenced by name (``"annotator.Dataset"``), so this package imports no
product area: every area may record events, the audit log depends on none of them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from annotator.append_only import AppendOnlyQuerySet

__all__ = [
    "AuditAction",
    "AuditEvent",
]


class AuditAction(models.TextChoices):
    IMAGE_VIEWED = "image_viewed", "Image viewed"
    ORIGINAL_DOWNLOADED = "original_downloaded", "De-identified DICOM downloaded"
    IMAGE_ANALYZED = "image_analyzed", "Image analyzed"
    ANNOTATION_CHANGED = "annotation_changed", "Annotation changed"
    VERSION_PROMOTED = "version_promoted", "Version promoted"
    VERSION_ROLLED_BACK = "version_rolled_back", "Version rolled back"
    DATASET_EXPORTED = "dataset_exported", "Dataset exported"
    DATASET_UPDATED = "dataset_updated", "Dataset updated"
    MEMBER_ADDED = "member_added", "Member added"
    MEMBER_CHANGED = "member_changed", "Member role changed"
    MEMBER_REMOVED = "member_removed", "Member removed"
    ACCESS_DENIED = "access_denied", "Access denied"
    LOGIN_FAILED = "login_failed", "Sign-in failed"
    LOGIN_SUCCEEDED = "login_succeeded", "Signed in"
    LABEL_STUDIO_SYNC = "label_studio_sync", "Label Studio sync"


class AuditEvent(models.Model):
    """One audited action. Append-only: rows are never updated or deleted here."""

    at = models.DateTimeField(default=timezone.now, db_index=True, help_text="UTC")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_username = models.CharField(
        max_length=150, blank=True, help_text="the actor's name, or the name tried at a failed sign-in"
    )
    action = models.CharField(max_length=30, choices=AuditAction.choices)
    dataset = models.ForeignKey(
        "annotator.Dataset", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["action", "at"]),
            models.Index(fields=["actor_username", "action", "at"]),
            models.Index(fields=["ip", "action", "at"]),
        ]

    def __str__(self) -> str:
        who = self.actor_username or "anonymous"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("audit events are append-only: they cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("audit events are append-only: they cannot be deleted")
