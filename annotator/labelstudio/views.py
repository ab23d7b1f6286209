"""The Label Studio ML-backend protocol, served from stored rows (no model runs here).

Label Studio calls these with the HTTP Basic credentials set on its ML-backend
connection (a user of ours, e.g. a radiologist member named ``labelstudio``) or, for
project webhooks, a ``Authorization: Token ...`` header. Each request sees only the
datasets that user is a member of; tasks of other datasets get an empty result.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import extend_schema
from knox.auth import TokenAuthentication
from kombu.exceptions import OperationalError
from rest_framework import status
from rest_framework.authentication import BasicAuthentication
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets.access import ADMIN, WRITE, has_role, visible_datasets
from annotator.datasets.models import Dataset, Image
from annotator.labelstudio.convert import (
    image_id_from_signature,
    image_id_from_task_data,
)
from annotator.labelstudio.models import LabelStudioProject
from annotator.labelstudio.records import apply_annotation, delete_annotations, stored_predictions
from annotator.learning.models import Promotion, RunTrigger
from annotator.learning.selectors import serving_version
from annotator.learning.services.predictions import request_proposals
from annotator.learning.services.runs import RunAlreadyActive, request_training_run
from annotator.web.files import stored_file_response

log = logging.getLogger(__name__)
MODEL_CLASS = "FractureDetector"
ANNOTATION_EVENTS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"}
DELETE_EVENTS = {"ANNOTATION_DELETED", "ANNOTATIONS_DELETED"}


def project_id(value) -> int | None:
    """Label Studio sends ``"<id>.<created timestamp>"`` (or a project object)."""
    if isinstance(value, dict):
        value = value.get("id")
    try:
        return int(str(value).split(".", 1)[0])
    except ValueError:
        return None


def dataset_for_project(user, project, extra_params) -> Dataset | None:
    """The dataset behind a Label Studio project: ``extra_params.dataset`` (set on the
    ML-backend connection), the project pushed by ``labelstudio_push``, or the only
    dataset the user can see."""
    visible = visible_datasets(user)
    wanted = extra_params.get("dataset") if isinstance(extra_params, dict) else None
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        return visible.filter(pk=wanted).first()
    links = LabelStudioProject.objects.filter(project_id=project_id(project) or 0, dataset__in=visible)
    if links.count() == 1:
        return links.get().dataset
    return visible.get() if visible.count() == 1 else None


class BackendView(APIView):
    authentication_classes = [BasicAuthentication, TokenAuthentication]
    permission_classes = [IsAuthenticated]

    def body(self) -> dict:
        if not isinstance(self.request.data, dict):
            raise ValidationError({"detail": "the body must be a JSON object"})
        return self.request.data



class HealthView(APIView):
    """``GET /ls/`` and ``/ls/health``: open, like Label Studio's own backends."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict}, summary="Label Studio ML backend: health")
    def get(self, request):
        return Response({"status": "UP", "model_class": MODEL_CLASS})


class SetupView(BackendView):
    @extend_schema(request=dict, responses={200: dict}, summary="Label Studio ML backend: setup")
    def post(self, request):
        body = self.body()
        dataset = dataset_for_project(request.user, body.get("project"), body.get("extra_params"))
        if dataset is None:
            raise ValidationError({"detail": "no dataset for this project: set extra_params "
                                   '{"dataset": <id>} on the connection, or run manage.py labelstudio_push'})
        return Response({"model_version": serving_version(dataset) or "none"})


class VersionsView(BackendView):
    @extend_schema(responses={200: dict}, summary="Label Studio ML backend: model versions")
    def get(self, request):
        promotions = Promotion.objects.filter(dataset__in=visible_datasets(request.user)).select_related(
            "model_version").order_by("dataset_id", "-serial")
        return Response({"versions": [p.serving_version for p in promotions]})


class PredictView(BackendView):
    """Stored predictions of the production version, one entry per task, in order.
    Tasks without one are answered empty and their proposals are requested."""

    @extend_schema(request=dict, responses={200: dict}, summary="Label Studio ML backend: predict")
    def post(self, request):
        tasks = self.body().get("tasks")
        if not isinstance(tasks, list):
            raise ValidationError({"tasks": "must be a list of tasks"})
        ids = [image_id_from_task_data(task.get("data") if isinstance(task, dict) else None) for task in tasks]
        images = Image.objects.filter(pk__in=[i for i in ids if i], dataset__in=visible_datasets(request.user))
        by_dataset: dict[int, list[Image]] = {}
        for image in images.select_related("dataset"):
            by_dataset.setdefault(image.dataset_id, []).append(image)
        answers = {}
        for dataset_images in by_dataset.values():
            found, missing = stored_predictions(dataset_images)
            answers.update(found)
            if missing:
                # proposals (and so predictions) are made by a worker, never here
                try:
                    request_proposals(dataset_images[0].dataset_id, [i.pk for i in missing])
                except OperationalError as exc:  # the broker is down: answer anyway, say so in the log
                    log.warning("could not queue proposals for %d images: %s", len(missing), exc)
        empty = {"result": [], "model_version": "none"}
        return Response({"results": [answers[i].to_json() if i in answers else empty for i in ids]})


class WebhookView(BackendView):
    """Label Studio events: annotations become revisions here; ``START_TRAINING`` queues
    a training run (the run itself happens in a worker)."""

    @extend_schema(request=dict, responses={201: dict, 200: dict}, summary="Label Studio ML backend: webhook")
    def post(self, request):
        body = self.body()
        action = body.get("action")
        if not isinstance(action, str):
            raise ValidationError({"action": "must be the event's name"})
        if action in ANNOTATION_EVENTS:
            return self.annotations(body)
        if action in DELETE_EVENTS:
            items = body.get("annotations") or [body.get("annotation")]
            ids = [item.get("id") for item in items if isinstance(item, dict) and isinstance(item.get("id"), int)]
            writable = [d for d in visible_datasets(request.user) if has_role(request.user, d, WRITE)]
            deleted = delete_annotations(ids, datasets=writable, actor=request.user)
            return Response({"status": "ok", "deleted": deleted}, status=status.HTTP_201_CREATED)
        if action == "START_TRAINING":
            return self.start_training(body)
        return Response({"status": "ignored", "action": str(action)[:50]})

    def annotations(self, body):
        annotations, tasks = body.get("annotation"), body.get("task")
        if isinstance(annotations, dict):
            annotations, tasks = [annotations], [tasks]
        if not isinstance(annotations, list) or not isinstance(tasks, list) or len(annotations) != len(tasks):
            raise ValidationError({"detail": "expected 'annotation' and 'task' objects"})
        changes = []
        for annotation, task in zip(annotations, tasks, strict=True):
            image = self.writable_image(task)
            if not isinstance(annotation, dict):
                raise ValidationError({"annotation": "must be an object"})
            changes.append(apply_annotation(image, annotation.get("result"), ls_annotation_id=annotation.get("id"),
                                            actor=self.request.user))
        return Response({"status": "ok", "changes": changes}, status=status.HTTP_201_CREATED)

    def writable_image(self, task) -> Image:
        image_id = image_id_from_task_data(task.get("data") if isinstance(task, dict) else None)
        image = Image.objects.filter(pk=image_id or 0, dataset__in=visible_datasets(self.request.user)).first()
        if image is None:
            raise Http404("the task's image is not one of ours (by image_id or our image URL)")
        if not has_role(self.request.user, image.dataset, WRITE):
            raise PermissionDenied("your role in this dataset does not allow annotating")
        return image

    def start_training(self, body):
        dataset = dataset_for_project(self.request.user, body.get("project"), None)
        if dataset is None:
            raise Http404("no dataset you may train for this project")
        if not has_role(self.request.user, dataset, ADMIN):  # the same rule as train-now
            raise PermissionDenied("only admins of this dataset may start training")
        try:
            run = request_training_run(dataset, RunTrigger.MANUAL, self.request.user)
        except RunAlreadyActive:
            return Response({"status": "ok", "detail": "a training run is already queued or running"})
        return Response({"status": "ok", "job": run.pk}, status=status.HTTP_201_CREATED)


class SignedImageView(APIView):
    """The image file behind a pushed task's signed URL (no session needed; audited)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={(200, "image/png"): bytes}, summary="An image for a Label Studio task (signed URL)")
    def get(self, request, token):
        image_id = image_id_from_signature(token, max_age=settings.LABEL_STUDIO_IMAGE_URL_MAX_AGE)
        image = Image.objects.filter(pk=image_id or 0).select_related("dataset").first()
        if image is None:
            raise Http404("no such image, or the link has expired")
        record_event(request, None, AuditAction.IMAGE_VIEWED, dataset=image.dataset, obj=image,
                     details={"via": "label studio signed url"})
        return stored_file_response(image.file, stem=f"image-{image.pk}", attachment=False)
