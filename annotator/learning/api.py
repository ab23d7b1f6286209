"""REST API of the learning area: model versions, training runs, rankings, schedules,
the loop's actions (train now, cancel, promote, roll back), the dashboard, and one-image
analysis (``POST /api/analyze``, answered 202 with the quick read to poll).

Actions are one service call each, for admins of the dataset; other datasets answer 404.
Domain errors become HTTP answers in one place (``annotator.web.errors``).
"""

from __future__ import annotations

from django.http import Http404
from django_celery_beat.models import PeriodicTask
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets import access
from annotator.datasets.access import NoMethodRevealsObjects, ScopedViewSet
from annotator.datasets.services.ingest import check_request_size
from annotator.learning.models import (
    ModelStatus,
    ModelVersion,
    PromotionKind,
    QuickRead,
    Ranking,
    RunState,
    RunTrigger,
    TrainingRun,
)
from annotator.learning.selectors import visible_schedules
from annotator.learning.serializers import (
    AnalyzeSerializer,
    ModelVersionSerializer,
    QuickReadSerializer,
    RankedImageSerializer,
    RankingSerializer,
    ScheduleSerializer,
    TrainingRunSerializer,
    dashboard_state,
)
from annotator.learning.services.analysis import create_quick_read
from annotator.learning.services.runs import cancel_run, request_training_run
from annotator.learning.services.versions import promote_version, rollback
from annotator.web.filters import AllowListFilterBackend, Filter, choice_of
from annotator.web.serializers import StrictFieldsMixin


class ReasonSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000)


class RollbackSerializer(ReasonSerializer):
    to_version = serializers.IntegerField(required=False, min_value=1, max_value=2**62,
                                          help_text="the version to re-promote (default: the one before)")


class TrainNowView(APIView):
    @extend_schema(request=None, responses={201: dict, 409: dict, 503: dict}, summary="Queue a training run now")
    def post(self, request, dataset_id):
        dataset = access.dataset_for(request.user, dataset_id, access.ADMIN)
        run = request_training_run(dataset, RunTrigger.MANUAL, actor=request.user)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_201_CREATED)


class CancelRunView(APIView):
    @extend_schema(request=None, responses=dict, summary="Cancel a queued run, or stop a running one at its next iteration")
    def post(self, request, run_id):
        run = access.object_for(request.user, TrainingRun.objects.all(), run_id, access.ADMIN)
        return Response(TrainingRunSerializer(cancel_run(run)).data)


class PromoteView(APIView):
    @extend_schema(request=ReasonSerializer, responses=dict, summary="Promote a version to production")
    def post(self, request, version_id):
        version = access.object_for(request.user, ModelVersion.objects.all(), version_id, access.ADMIN)
        reason = ReasonSerializer(data=request.data)
        reason.is_valid(raise_exception=True)
        promotion = promote_version(version, kind=PromotionKind.MANUAL, actor=request.user,
                                    reason=reason.validated_data.get("reason", ""))
        version.refresh_from_db()
        return Response({**ModelVersionSerializer(version).data, "serving_version": promotion.serving_version})


class RollbackView(APIView):
    @extend_schema(request=RollbackSerializer, responses=dict, summary="Roll back to the previous (or a chosen) version")
    def post(self, request, dataset_id):
        dataset = access.dataset_for(request.user, dataset_id, access.ADMIN)
        form = RollbackSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        target = None
        if form.validated_data.get("to_version") is not None:
            target = ModelVersion.objects.filter(dataset=dataset, pk=form.validated_data["to_version"]).first()
            if target is None:
                raise Http404("no such version in this dataset")
        promotion = rollback(dataset, actor=request.user, to=target, reason=form.validated_data.get("reason", ""))
        return Response({**ModelVersionSerializer(promotion.model_version).data,
                         "serving_version": promotion.serving_version})


class DashboardView(APIView):
    @extend_schema(responses=dict, summary="Runs, versions, production and queue state of a dataset")
    def get(self, request, dataset_id):
        dataset = access.dataset_for(request.user, dataset_id)
        return Response({**dashboard_state(dataset), "can_administer": access.has_role(request.user, dataset, access.ADMIN)})


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = ModelVersion.objects.order_by("-created_at", "-id")
    serializer_class = ModelVersionSerializer
    filter_fields = {"dataset": Filter("dataset_id"), "status": Filter("status", choice_of(ModelStatus))}


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = TrainingRun.objects.order_by("-created_at", "-id")
    serializer_class = TrainingRunSerializer
    filter_fields = {"dataset": Filter("dataset_id"), "state": Filter("state", choice_of(RunState))}


class RankingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = Ranking.objects.order_by("-created_at", "-id")
    serializer_class = RankingSerializer
    filter_fields = {"dataset": Filter("dataset_id")}

    @extend_schema(responses=RankedImageSerializer(many=True), summary="The ranking's images, first to read first")
    @action(detail=True, methods=["get"])
    def entries(self, request, pk=None):
        page = self.paginate_queryset(self.get_object().entries.order_by("position"))
        return self.get_paginated_response(RankedImageSerializer(page, many=True).data)


class ScheduleViewSet(NoMethodRevealsObjects, viewsets.ReadOnlyModelViewSet):
    """Retraining schedules (django-celery-beat periodic tasks naming a visible dataset
    in their kwargs). Read-only here: admins change them in the admin."""

    serializer_class = ScheduleSerializer
    filter_backends = [AllowListFilterBackend]
    queryset = PeriodicTask.objects.none()  # for the schema; see get_queryset

    def get_queryset(self):
        return visible_schedules(self.request.user)

    def get_object(self):
        for task in self.get_queryset():
            if str(task.pk) == str(self.kwargs["pk"]):
                return task
        raise Http404("no such schedule")


class AnalyzeView(APIView):
    """``POST /api/analyze``: one image read by a dataset's production model, in a worker.

    Answers 202 at once with the quick read to poll (``result_url``); the web thread never
    waits for the worker. Admins and radiologists of the dataset; throttled per user.
    """

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "analyze"

    @extend_schema(
        request={"multipart/form-data": AnalyzeSerializer},
        responses={202: QuickReadSerializer, 503: OpenApiResponse(description="no production model")},
        summary="Queue one image for the production model; poll result_url for the answer",
    )
    def post(self, request):
        check_request_size(request.META.get("CONTENT_LENGTH"))
        form = AnalyzeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        dataset = access.dataset_for(request.user, form.validated_data["dataset"], access.WRITE)
        upload = form.validated_data["file"]
        read = create_quick_read(dataset, request.user, upload)
        record_event(request, None, AuditAction.IMAGE_ANALYZED, dataset=dataset, obj=read,
                     details={"file_name": upload.name[:200]})
        return Response(QuickReadSerializer(read).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(responses=QuickReadSerializer, summary="One quick read (analysis): state and result")
@api_view(["GET"])
def quick_read_status(request, pk):
    read = QuickRead.objects.filter(user=request.user, dataset__in=access.visible_datasets(request.user), pk=pk).first()
    if read is None:
        raise Http404("no such quick read")
    return Response(QuickReadSerializer(read).data)
