"""API actions of the learning loop: train now, cancel, promote, roll back, dashboard.

Each is one call of a service; admins of the dataset only. Other datasets answer 404.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator.models import ModelVersion, PromotionKind, RunTrigger, TrainingRun
from annotator.services.dashboard import dashboard_state, run_summary, version_summary
from annotator.services.datasets import can_administer, visible_datasets
from annotator.services.training import (
    BrokerUnavailable,
    RunAlreadyActive,
    cancel_run,
    request_training_run,
)
from annotator.services.versions import PromotionError, promote_version, rollback

ReasonSerializer = inline_serializer("Reason", {"reason": serializers.CharField(required=False, allow_blank=True)})
RollbackSerializer = inline_serializer(
    "Rollback",
    {"to_version": serializers.IntegerField(required=False), "reason": serializers.CharField(required=False, allow_blank=True)},
)


def administered_dataset(request, dataset_id):
    dataset = get_object_or_404(visible_datasets(request.user), pk=dataset_id)
    if not can_administer(request.user, dataset):
        raise PermissionDenied("only admins of this dataset may do this")
    return dataset


class TrainNowView(APIView):
    @extend_schema(request=None, responses={201: dict, 409: dict, 503: dict}, summary="Queue a training run now")
    def post(self, request, dataset_id):
        dataset = administered_dataset(request, dataset_id)
        try:
            run = request_training_run(dataset, RunTrigger.MANUAL, actor=request.user)
        except RunAlreadyActive as exc:
            return Response({"detail": str(exc), "run": exc.run.pk if exc.run else None}, status=status.HTTP_409_CONFLICT)
        except BrokerUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(run_summary(run), status=status.HTTP_201_CREATED)


class CancelRunView(APIView):
    @extend_schema(request=None, responses=dict, summary="Cancel a queued run, or stop a running one at its next iteration")
    def post(self, request, run_id):
        run = get_object_or_404(TrainingRun.objects.filter(dataset__in=visible_datasets(request.user)), pk=run_id)
        administered_dataset(request, run.dataset_id)
        return Response(run_summary(cancel_run(run)))


class PromoteView(APIView):
    @extend_schema(request=ReasonSerializer, responses=dict, summary="Promote a version to production")
    def post(self, request, version_id):
        version = get_object_or_404(ModelVersion.objects.filter(dataset__in=visible_datasets(request.user)), pk=version_id)
        administered_dataset(request, version.dataset_id)
        try:
            promotion = promote_version(version, kind=PromotionKind.MANUAL, actor=request.user,
                                        reason=str(request.data.get("reason", "")))
        except PromotionError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        version.refresh_from_db()
        return Response({**version_summary(version), "serving_version": promotion.serving_version})


class RollbackView(APIView):
    @extend_schema(request=RollbackSerializer, responses=dict, summary="Roll back to the previous (or a chosen) version")
    def post(self, request, dataset_id):
        dataset = administered_dataset(request, dataset_id)
        target = None
        if request.data.get("to_version") is not None:
            target = get_object_or_404(ModelVersion.objects.filter(dataset=dataset), pk=request.data["to_version"])
        try:
            promotion = rollback(dataset, actor=request.user, to=target, reason=str(request.data.get("reason", "")))
        except PromotionError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({**version_summary(promotion.model_version), "serving_version": promotion.serving_version})


class DashboardView(APIView):
    @extend_schema(responses=dict, summary="Runs, versions, production and queue state of a dataset")
    def get(self, request, dataset_id):
        dataset = get_object_or_404(visible_datasets(request.user), pk=dataset_id)
        return Response({**dashboard_state(dataset), "can_administer": can_administer(request.user, dataset)})
