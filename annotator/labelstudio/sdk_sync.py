"""Push a dataset to a Label Studio project and pull its annotations back (label-studio-sdk).

Both are idempotent: the project and each image's task are remembered in
``LabelStudioProject`` / ``LabelStudioTask``. Existing tasks are matched by their
``data.image_id`` first, so a push that stopped half-way adds no duplicates when run
again. Task images point at OUR signed URLs (``/ls/images/<signed id>``); Label Studio
never receives a session or an API token of ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from label_studio_sdk import LabelStudio

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets.models import Dataset
from annotator.labelstudio.convert import label_config, signed_image_path
from annotator.labelstudio.models import LabelStudioProject, LabelStudioTask
from annotator.labelstudio.records import apply_annotation, stored_predictions

IMPORT_BATCH = 200


@dataclass
class SyncReport:
    project_id: int = 0
    created_project: bool = False
    tasks_created: int = 0
    tasks_linked: int = 0
    predictions_pushed: int = 0
    annotations_pulled: int = 0


def client_for(url: str, api_key: str) -> LabelStudio:
    return LabelStudio(base_url=url.rstrip("/"), api_key=api_key)


def task_data(image, public_base_url: str) -> dict:
    return {"image": public_base_url.rstrip("/") + signed_image_path(image.pk), "image_id": image.pk}


def _existing_tasks(client, project_id: int) -> dict[int, int]:
    """``{our image id: task id}`` for the project's tasks that carry an ``image_id``."""
    found = {}
    for task in client.tasks.list(project=project_id, fields="all"):
        image_id = (task.data or {}).get("image_id")
        if isinstance(image_id, int):
            found[image_id] = task.id
    return found


def push_dataset(dataset: Dataset, *, url: str, api_key: str, public_base_url: str, actor=None,
                 client=None) -> SyncReport:
    """Create or update the project (label config from the categories), create a task
    for every image that has none, and add the production version's predictions to
    tasks that lack that version's."""
    client = client or client_for(url, api_key)
    report = SyncReport()
    config = label_config(list(dataset.categories.order_by("coco_id").values_list("name", flat=True)))
    link = LabelStudioProject.objects.filter(dataset=dataset, url=url).first()
    if link is None:
        project = client.projects.create(title=dataset.name[:50], label_config=config)
        link = LabelStudioProject.objects.create(dataset=dataset, url=url, project_id=project.id)
        report.created_project = True
    else:
        client.projects.update(id=link.project_id, label_config=config)
    report.project_id = link.project_id

    linked = dict(link.tasks.values_list("image_id", "task_id"))
    images = list(dataset.images.order_by("id"))
    unlinked = [image for image in images if image.pk not in linked]
    if unlinked:
        existing = _existing_tasks(client, link.project_id)
        to_import = [image for image in unlinked if image.pk not in existing]
        for start in range(0, len(to_import), IMPORT_BATCH):
            batch = to_import[start : start + IMPORT_BATCH]
            client.projects.import_tasks(id=link.project_id, request=[task_data(i, public_base_url) for i in batch])
        report.tasks_created = len(to_import)
        existing = _existing_tasks(client, link.project_id) if to_import else existing
        LabelStudioTask.objects.bulk_create(
            [LabelStudioTask(project=link, image_id=image.pk, task_id=existing[image.pk])
             for image in unlinked if image.pk in existing],
            ignore_conflicts=True,
        )
        report.tasks_linked = sum(1 for image in unlinked if image.pk in existing)

    answers, _missing = stored_predictions(images)
    for task in link.tasks.select_related("image"):
        answer = answers.get(task.image_id)
        if answer is None or not answer.result or task.predicted_version == answer.model_version:
            continue
        client.predictions.create(task=task.task_id, result=answer.result, score=answer.score,
                                  model_version=answer.model_version)
        LabelStudioTask.objects.filter(pk=task.pk).update(predicted_version=answer.model_version)
        report.predictions_pushed += 1
    LabelStudioProject.objects.filter(pk=link.pk).update(pushed_at=timezone.now())
    record_event(None, actor, AuditAction.LABEL_STUDIO_SYNC, dataset=dataset, obj=link,
                 details={"direction": "push", "url": url, **report.__dict__})
    return report


def pull_annotations(dataset: Dataset, *, url: str, api_key: str, actor=None, client=None) -> SyncReport:
    """Bring each task's latest submitted annotation back as revisions, skipping the
    ones already pulled at the same ``updated_at``."""
    client = client or client_for(url, api_key)
    link = LabelStudioProject.objects.filter(dataset=dataset, url=url).first()
    if link is None:
        raise LookupError(f"dataset {dataset.name!r} was never pushed to {url}; run labelstudio_push first")
    report = SyncReport(project_id=link.project_id)
    for task in link.tasks.select_related("image", "image__dataset").order_by("task_id"):
        annotations = [a for a in client.annotations.list(id=task.task_id) if not a.was_cancelled]
        if not annotations:
            continue
        latest = max(annotations, key=lambda a: (str(a.updated_at), a.id))
        stamp = str(latest.updated_at)
        if task.pulled_annotation_id == latest.id and task.pulled_annotation_updated_at == stamp:
            continue
        with transaction.atomic():
            apply_annotation(task.image, latest.result, ls_annotation_id=latest.id, actor=actor)
            LabelStudioTask.objects.filter(pk=task.pk).update(
                pulled_annotation_id=latest.id, pulled_annotation_updated_at=stamp
            )
        report.annotations_pulled += 1
    LabelStudioProject.objects.filter(pk=link.pk).update(pulled_at=timezone.now())
    record_event(None, actor, AuditAction.LABEL_STUDIO_SYNC, dataset=dataset, obj=link,
                 details={"direction": "pull", "url": url, "annotations": report.annotations_pulled})
    return report
