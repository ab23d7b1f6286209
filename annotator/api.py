"""REST API under ``/api/``: datasets, image upload and listing, COCO export.

Views are thin: they check access, validate input and call one service function.
Objects of datasets the user is not a member of answer 404.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from annotator.imaging import ImageRejected
from annotator.models import Image, ImageSource, ValidationSplitFrozen
from annotator.serializers import (
    DatasetSerializer,
    ExportQuerySerializer,
    ImageSerializer,
    ImageUploadSerializer,
)
from annotator.services.coco_export import ExportError, build_coco, parse_splits
from annotator.services.datasets import can_write, visible_datasets
from annotator.services.uploads import UploadTooLarge, accept_upload, check_request_size

IMAGE_FILTERS = ("split", "status")


def export_response(dataset, split_param: str | None) -> JsonResponse:
    """The dataset's COCO export as a JSON download (shared by the API and the UI)."""
    try:
        splits = parse_splits(split_param)
    except ExportError as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    response = JsonResponse(build_coco(dataset, splits), json_dumps_params={"separators": (",", ":")})
    response["Content-Disposition"] = f'attachment; filename="{dataset.pk}-{"-".join(splits)}-coco.json"'
    return response


class DatasetViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = DatasetSerializer

    def get_queryset(self):
        return visible_datasets(self.request.user).prefetch_related("categories")

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
            return self.list_images(request, dataset)
        if not can_write(request.user, dataset):
            raise PermissionDenied("only admins and radiologists of this dataset may upload")
        upload = ImageUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        stored = accept_upload(
            dataset, upload.validated_data["file"], split=upload.validated_data["split"], source=ImageSource.API
        )
        return Response(
            ImageSerializer(stored.image).data,
            status=status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK,
        )

    def list_images(self, request, dataset):
        unknown = set(request.query_params) - {*IMAGE_FILTERS, "page"}
        if unknown:
            raise ValidationError({"detail": f"filtering on {', '.join(sorted(unknown))} is not allowed"})
        images = dataset.images.filter(
            **{name: request.query_params[name] for name in IMAGE_FILTERS if name in request.query_params}
        )
        page = self.paginate_queryset(images)
        return self.get_paginated_response(ImageSerializer(page, many=True).data)

    @extend_schema(parameters=[ExportQuerySerializer], responses={200: dict}, summary="COCO export")
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        return export_response(self.get_object(), request.query_params.get("split"))

    def handle_exception(self, exc):
        if isinstance(exc, UploadTooLarge):
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        if isinstance(exc, ImageRejected):
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, ValidationSplitFrozen):
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        return super().handle_exception(exc)


class ImageViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ImageSerializer

    def get_queryset(self):
        return Image.objects.filter(dataset__in=visible_datasets(self.request.user))

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
