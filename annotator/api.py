"""REST API under ``/api/``.

Views are thin: they check access, validate input and call one service function.
Every object belongs to a dataset; querysets hold only the datasets the user is a
member of, so someone else's objects answer 404 for every method, and the role checks
(``annotator.permissions``) run before any input is read. List endpoints filter only on
declared fields (``annotator.filters``).
"""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django_celery_beat.models import PeriodicTask
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import Throttled
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from annotator.analyze import AnalysisUnavailable, request_analysis
from annotator.filters import AllowListFilterBackend, Filter, apply_filters, choice_of
from annotator.imaging import ImageRejected
from annotator.models import (
    Annotation,
    AnnotationSource,
    AuditAction,
    Dataset,
    Image,
    ImageSource,
    ModelStatus,
    ModelVersion,
    Ranking,
    ReviewStatus,
    RunState,
    Split,
    TrainingRun,
    ValidationSplitFrozen,
)
from annotator.permissions import WRITE_ROLES, DatasetRole, login_locked
from annotator.serializers import (
    AnalyzeResultSerializer,
    AnalyzeSerializer,
    AnnotationSerializer,
    DatasetSerializer,
    DatasetUpdateSerializer,
    ExportQuerySerializer,
    ImageSerializer,
    ImageUploadSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    ModelVersionSerializer,
    RankedImageSerializer,
    RankingSerializer,
    ScheduleSerializer,
    TrainingRunSerializer,
)
from annotator.services.audit import client_ip, record_event
from annotator.services.coco_export import ExportError, build_coco, parse_splits
from annotator.services.datasets import (
    MembershipConflict,
    add_member,
    change_member_role,
    remove_member,
    update_dataset,
    visible_datasets,
    visible_schedules,
)
from annotator.services.uploads import UploadTooLarge, accept_upload, check_request_size

IMAGE_FILTERS = {
    "split": Filter("split", choice_of(Split)),
    "status": Filter("status", choice_of(ReviewStatus)),
}

# Stored files are served with a type read from their first bytes (what we wrote), never
# from a name someone supplied: a COCO ``file_name`` such as ``x.png.html`` stays a PNG.
MAGIC_TYPES = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", "png"),
    (b"\xff\xd8\xff", 0, "image/jpeg", "jpg"),
    (b"DICM", 128, "application/dicom", "dcm"),
)


def stored_file_response(field_file, *, stem: str, attachment: bool) -> FileResponse:
    """A stored image file with a fixed, safe ``Content-Type``; anything unrecognised is
    ``application/octet-stream`` and always an attachment."""
    handle = field_file.open("rb")
    head = handle.read(132)
    handle.seek(0)
    content_type, suffix = "application/octet-stream", "bin"
    for magic, offset, kind, ext in MAGIC_TYPES:
        if head[offset : offset + len(magic)] == magic:
            content_type, suffix = kind, ext
            break
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=attachment or suffix == "bin",
        filename=f"{stem}.{suffix}",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


def export_response(dataset, split_param: str | None, request=None) -> JsonResponse:
    """The dataset's COCO export as a JSON download (shared by the API and the UI);
    audited as ``dataset_exported`` when the request is given."""
    try:
        splits = parse_splits(split_param)
    except ExportError as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    coco = build_coco(dataset, splits)
    if request is not None:
        record_event(
            request, None, AuditAction.DATASET_EXPORTED, dataset=dataset, obj=dataset,
            details={"splits": splits, "images": len(coco["images"]), "via": "api"},
        )
    response = JsonResponse(coco, json_dumps_params={"separators": (",", ":")})
    response["Content-Disposition"] = f'attachment; filename="{dataset.pk}-{"-".join(splits)}-coco.json"'
    return response


class NoMethodRevealsObjects:
    """A method an endpoint does not offer still answers 404 for an object the user
    cannot see (405 only once it is visible), so no method confirms that it exists."""

    def http_method_not_allowed(self, request, *args, **kwargs):
        if self.lookup_field in kwargs or (self.lookup_url_kwarg or "") in kwargs:
            self.get_object()
        return super().http_method_not_allowed(request, *args, **kwargs)


class ScopedViewSet(NoMethodRevealsObjects, viewsets.GenericViewSet):
    """Objects of visible datasets only, role-checked, allow-list filtered.

    ``dataset_field`` is the path from the model to its dataset. ``action_roles`` maps
    an action to the roles allowed to call it with an unsafe method (admins otherwise).
    """

    permission_classes = [IsAuthenticated, DatasetRole]
    filter_backends = [AllowListFilterBackend]
    dataset_field = "dataset"
    filter_fields: dict[str, Filter] = {}
    action_roles: dict[str, frozenset[str]] = {}

    def get_queryset(self):
        datasets = visible_datasets(self.request.user)
        return self.queryset.filter(**{f"{self.dataset_field}__in": datasets})


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Datasets you are a member of. Admins may rename them and manage their members."""

    queryset = Dataset.objects.all()  # narrowed in get_queryset; here for the schema
    serializer_class = DatasetSerializer
    action_roles = {"images": WRITE_ROLES}
    action_params = {"images": set(IMAGE_FILTERS), "export": {"split"}}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return visible_datasets(self.request.user).prefetch_related("categories")

    @extend_schema(request=DatasetUpdateSerializer, responses=DatasetSerializer)
    def partial_update(self, request, pk=None):
        dataset = self.get_object()
        changes = DatasetUpdateSerializer(dataset, data=request.data, partial=True)
        changes.is_valid(raise_exception=True)
        updated = update_dataset(dataset, changes.validated_data, actor=request.user, request=request)
        return Response(DatasetSerializer(updated).data)

    @extend_schema(
        methods=["GET"], responses=ImageSerializer(many=True), summary="List the dataset's images"
    )
    @extend_schema(
        methods=["POST"],
        request={"multipart/form-data": ImageUploadSerializer},
        responses={201: ImageSerializer, 200: ImageSerializer},
        summary="Upload a radiograph (PNG, 16-bit PNG, JPEG, DICOM)",
    )
    @action(detail=True, methods=["get", "post"], parser_classes=[MultiPartParser, FormParser])
    def images(self, request, pk=None):
        if request.method == "POST":
            check_request_size(request.META.get("CONTENT_LENGTH"))
        dataset = self.get_object()
        if request.method == "GET":
            images = apply_filters(dataset.images.all(), request.query_params, IMAGE_FILTERS)
            page = self.paginate_queryset(images)
            return self.get_paginated_response(ImageSerializer(page, many=True).data)
        upload = ImageUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        stored = accept_upload(
            dataset, upload.validated_data["file"], split=upload.validated_data["split"], source=ImageSource.API
        )
        return Response(
            ImageSerializer(stored.image).data,
            status=status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK,
        )

    @extend_schema(parameters=[ExportQuerySerializer], responses={200: dict}, summary="COCO export")
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        return export_response(self.get_object(), request.query_params.get("split"), request)

    @extend_schema(methods=["GET"], responses=MembershipSerializer(many=True), summary="List members")
    @extend_schema(methods=["POST"], request=MembershipSerializer, responses={201: MembershipSerializer},
                   summary="Add a member (admins)")
    @action(detail=True, methods=["get", "post"], url_path="members")
    def members(self, request, pk=None):
        dataset = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(dataset.memberships.select_related("user").order_by("id"))
            return self.get_paginated_response(MembershipSerializer(page, many=True).data)
        new = MembershipSerializer(data=request.data)
        new.is_valid(raise_exception=True)
        membership = add_member(
            dataset, new.validated_data["user"], new.validated_data.get("role", "radiologist"),
            actor=request.user, request=request,
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], responses=MembershipSerializer, summary="One member")
    @extend_schema(methods=["PATCH"], request=MembershipRoleSerializer, responses=MembershipSerializer,
                   summary="Change a member's role (admins)")
    @extend_schema(methods=["DELETE"], responses={204: None}, summary="Remove a member (admins)")
    @action(detail=True, methods=["get", "patch", "delete"], url_path=r"members/(?P<member_pk>[0-9]+)")
    def member(self, request, pk=None, member_pk=None):
        dataset = self.get_object()
        membership = get_object_or_404(dataset.memberships.select_related("user"), pk=member_pk)
        if request.method == "GET":
            return Response(MembershipSerializer(membership).data)
        if request.method == "DELETE":
            remove_member(membership, actor=request.user, request=request)
            return Response(status=status.HTTP_204_NO_CONTENT)
        change = MembershipRoleSerializer(data=request.data)
        change.is_valid(raise_exception=True)
        updated = change_member_role(membership, change.validated_data["role"], actor=request.user, request=request)
        return Response(MembershipSerializer(updated).data)

    def handle_exception(self, exc):
        if isinstance(exc, UploadTooLarge):
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if isinstance(exc, ImageRejected):
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, ValidationSplitFrozen):
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        if isinstance(exc, MembershipConflict):
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return super().handle_exception(exc)


class ImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Images of your datasets, their displayable file and their de-identified DICOM."""

    queryset = Image.objects.all()
    serializer_class = ImageSerializer
    filter_fields = {"dataset": Filter("dataset_id"), **IMAGE_FILTERS}

    @extend_schema(responses={(200, "image/png"): OpenApiResponse(description="PNG or JPEG")},
                   summary="The displayable image (audited)")
    @action(detail=True, methods=["get"])
    def file(self, request, pk=None):
        image = self.get_object()
        record_event(request, None, AuditAction.IMAGE_VIEWED, dataset=image.dataset, obj=image,
                     details={"via": "api/file"})
        return stored_file_response(image.file, stem=f"image-{image.pk}", attachment=False)

    @extend_schema(responses={(200, "application/dicom"): OpenApiResponse(description="DICOM")},
                   summary="The de-identified DICOM, when the image came as one (audited)")
    @action(detail=True, methods=["get"])
    def original(self, request, pk=None):
        image = self.get_object()
        if not image.original:
            raise Http404("this image has no DICOM original")
        record_event(request, None, AuditAction.ORIGINAL_DOWNLOADED, dataset=image.dataset, obj=image)
        return stored_file_response(image.original, stem=f"image-{image.pk}", attachment=True)


class AnnotationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Boxes (read-only here; they change through the review endpoints)."""

    queryset = Annotation.objects.select_related("category").order_by("id")
    serializer_class = AnnotationSerializer
    dataset_field = "image__dataset"
    filter_fields = {
        "dataset": Filter("image__dataset_id"),
        "image": Filter("image_id"),
        "source": Filter("source", choice_of(AnnotationSource)),
    }


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
    """``POST /api/analyze``: one image read by a dataset's production model."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": AnalyzeSerializer},
        responses={200: AnalyzeResultSerializer, 503: OpenApiResponse(description="no model or no worker")},
        summary="Fracture probability and boxes for one image (not stored)",
    )
    def post(self, request):
        check_request_size(request.META.get("CONTENT_LENGTH"))
        form = AnalyzeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        dataset = get_object_or_404(visible_datasets(request.user), pk=form.validated_data["dataset"])
        upload = form.validated_data["file"]
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise UploadTooLarge(f"the file is over the upload limit of {settings.MAX_UPLOAD_BYTES} bytes")
        result = request_analysis(dataset, upload.read(), upload.name)
        record_event(request, None, AuditAction.IMAGE_ANALYZED, dataset=dataset,
                     details={"file_name": upload.name[:200], "model_version": result["model_version"]})
        return Response(result)

    def handle_exception(self, exc):
        if isinstance(exc, UploadTooLarge):
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if isinstance(exc, ImageRejected):
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, AnalysisUnavailable):
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return super().handle_exception(exc)


class TokenView(ObtainAuthToken):
    """``POST /api/auth/token/`` (username, password) -> ``{"token"}`` for scripts.
    Rate-limited, and refused with 429 while the name or address is locked out."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    def post(self, request, *args, **kwargs):
        if login_locked(str(request.data.get("username", ""))[:150], client_ip(request)):
            raise Throttled(detail="too many failed sign-ins; try again later")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        record_event(request, user, AuditAction.LOGIN_SUCCEEDED, details={"via": "token"})
        return Response({"token": token.key})

