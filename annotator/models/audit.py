"""Audit and interoperability records.

- ``AuditEvent``: the append-only, UTC record of who viewed images, changed boxes,
  promoted or rolled back versions, exported data, and who was refused. Written only
  through ``annotator.services.audit.record_event``.
- ``LabelStudioProject`` / ``LabelStudioTask``: which Label Studio project and task a
  dataset and image are pushed to, so that ``labelstudio_push`` / ``labelstudio_pull``
  are idempotent.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from annotator.models.dataset import AppendOnlyQuerySet, Dataset, Image

__all__ = [
    "AuditAction",
    "AuditEvent",
    "LabelStudioProject",
    "LabelStudioTask",
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
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
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


class LabelStudioProject(models.Model):
    """A dataset pushed to a Label Studio project (one per dataset and server)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="label_studio_projects")
    url = models.URLField(max_length=300, help_text="the Label Studio server's base URL")
    project_id = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    pulled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "url"], name="one_ls_project_per_dataset_and_server"),
            models.UniqueConstraint(fields=["url", "project_id"], name="ls_project_once"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset} -> {self.url} project {self.project_id}"


class LabelStudioTask(models.Model):
    """One image as a Label Studio task, with what was last exchanged for it."""

    project = models.ForeignKey(LabelStudioProject, on_delete=models.CASCADE, related_name="tasks")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="label_studio_tasks")
    task_id = models.PositiveIntegerField()
    predicted_version = models.CharField(
        max_length=120, blank=True, help_text="serving version of the last prediction pushed"
    )
    pulled_annotation_id = models.PositiveIntegerField(null=True, blank=True)
    pulled_annotation_updated_at = models.CharField(max_length=40, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "image"], name="ls_task_once_per_image"),
            models.UniqueConstraint(fields=["project", "task_id"], name="ls_task_id_once"),
        ]

    def __str__(self) -> str:
        return f"image {self.image_id} = task {self.task_id}"
