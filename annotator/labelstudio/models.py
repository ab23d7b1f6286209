"""Which Label Studio project and task a dataset and image are pushed to, so that
``labelstudio_push`` / ``labelstudio_pull`` are idempotent."""

from __future__ import annotations

from django.db import models

from annotator.datasets.models import Dataset, Image

__all__ = ["LabelStudioProject", "LabelStudioTask"]


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
