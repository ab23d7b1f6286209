"""REST API of the dataset area: datasets, members, images, boxes, uploads, COCO export.

Views are short adapters: they check access (``annotator.datasets.access``), validate
input with a serializer and call one service. Domain errors become HTTP answers in one
place (``annotator.web.errors``).
"""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets import access
from annotator.datasets.access import ScopedViewSet
from annotator.datasets.models import (
    Annotation,
    AnnotationSource,
    Dataset,
    Image,
    ImageSource,
    ReviewStatus,
    Split,
)
from annotator.datasets.serializers import (
    AnnotationSerializer,
    DatasetSerializer,
    DatasetUpdateSerializer,
    ExportQuerySerializer,
    ImageSerializer,
    ImageUploadSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
)
from annotator.datasets.services.coco_export import build_coco, parse_splits
from annotator.datasets.services.ingest import accept_upload, check_request_size
from annotator.datasets.services.membership import (
    add_member,
    change_member_role,
    remove_member,
    update_dataset,
)
from annotator.web.files import stored_file_response
from annotator.web.filters import Filter, apply_filters, choice_of
from annotator.web.throttles import UploadThrottle

IMAGE_FILTERS = {
    "split": Filter("split", choice_of(Split)),
    "status": Filter("status", choice_of(ReviewStatus)),
}


def export_response(dataset, split_param: str | None, request=None) -> JsonResponse:
    """The dataset's COCO export as a JSON download (shared by the API and the UI);
    audited as ``dataset_exported`` when the request is given."""
    splits = parse_splits(split_param)
    coco = build_coco(dataset, splits)
    if request is not None:
        record_event(
            request, None, AuditAction.DATASET_EXPORTED, dataset=dataset, obj=dataset,
            details={"splits": splits, "images": len(coco["images"]), "via": "api"},
        )
    response = JsonResponse(coco, json_dumps_params={"separators": (",", ":")})
    response["Content-Disposition"] = f'attachment; filename="{dataset.pk}-{"-".join(splits)}-coco.json"'
    return response


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Datasets you are a member of. Admins may rename them and manage their members."""

    queryset = Dataset.objects.all()  # narrowed in get_queryset; here for the schema
    serializer_class = DatasetSerializer
    action_roles = {"images": access.WRITE}
    action_params = {"images": set(IMAGE_FILTERS), "export": {"split"}}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return access.visible_datasets(self.request.user).prefetch_related("categories")

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
    @action(detail=True, methods=["get", "post"], parser_classes=[MultiPartParser, FormParser],
            throttle_classes=[UploadThrottle])
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
