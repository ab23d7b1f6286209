"""Quick read: upload one X-ray, see the production model's fracture probability and
boxes. The web process stores the upload and a windowed preview and enqueues
``analyze_upload`` on the ``inference`` queue; the task (the only place that imports the
ML backend, inside its body) writes the result on the ``QuickRead`` row the page polls.
Optionally the reader adds the upload to the dataset for review.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from celery import shared_task
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import get_valid_filename
from rest_framework.decorators import api_view
from rest_framework.response import Response

from annotator.analyze import AnalysisUnavailable, analyze_image_bytes
from annotator.imaging import ImageRejected, decode_image, encode_png
from annotator.models import ImageSource, Photometric, QuickRead, QuickReadState
from annotator.services.datasets import can_write, visible_datasets
from annotator.services.ingest import store_image
from annotator.services.uploads import UploadTooLarge, check_request_size
from annotator.services.versions import production_version


def windowed_preview(pixels: np.ndarray, center: float, width: float, photometric: str) -> np.ndarray:
    """8-bit display pixels: the default window applied, MONOCHROME1 inverted."""
    low = center - width / 2
    shown = np.clip((pixels.astype(np.float32) - low) / width, 0.0, 1.0)
    if photometric == Photometric.MONOCHROME1:
        shown = 1.0 - shown
    return np.rint(shown * 255).astype(np.uint8)


def create_quick_read(dataset, user, uploaded) -> QuickRead:
    """Decode and store an upload with its preview, and enqueue the analysis on commit.
    Raises ``UploadTooLarge`` or ``ImageRejected``; nothing is stored then."""
    if uploaded.size > settings.MAX_UPLOAD_BYTES:
        raise UploadTooLarge(f"{uploaded.name} is over the upload limit of {settings.MAX_UPLOAD_BYTES} bytes")
    data = uploaded.read()
    decoded = decode_image(data, uploaded.name, max_pixels=settings.MAX_IMAGE_PIXELS)
    stem = get_valid_filename(Path(uploaded.name).stem) or "upload"
    preview = windowed_preview(decoded.pixels, decoded.window_center, decoded.window_width, decoded.photometric)
    with transaction.atomic():
        read = QuickRead(dataset=dataset, user=user, file_name=uploaded.name,
                         width=decoded.width, height=decoded.height)
        read.upload.save(f"{decoded.sha256[:12]}-{stem}{Path(uploaded.name).suffix.lower()}",
                         ContentFile(data), save=False)
        read.preview.save(f"{decoded.sha256[:12]}-{stem}-preview.png", ContentFile(encode_png(preview)), save=False)
        read.save()
        transaction.on_commit(lambda: analyze_upload.delay(read.pk))
    return read


@shared_task(name="annotator.quick_read.analyze_upload", acks_late=True,
             reject_on_worker_lost=True, soft_time_limit=300, time_limit=330)
def analyze_upload(quick_read_id: int) -> None:
    """Run the dataset's production model on one upload (``analyze_image_bytes``, the
    same reading ``POST /api/analyze`` gives) and store it on the row. Idempotent: a row
    that is no longer queued is left alone. Errors are stored on the row."""
    read = QuickRead.objects.select_related("dataset").get(pk=quick_read_id)
    if read.state != QuickReadState.QUEUED:
        return
    version = production_version(read.dataset)
    try:
        if version is None:
            raise AnalysisUnavailable(f"dataset {read.dataset.name!r} has no production model yet: "
                                      "train and promote one before using quick read")
        with default_storage.open(read.upload.name, "rb") as stored:
            reading = analyze_image_bytes(read.dataset_id, stored.read(), read.file_name)
    except Exception as exc:  # stored for the page; the task itself succeeds
        QuickRead.objects.filter(pk=read.pk, state=QuickReadState.QUEUED).update(
            state=QuickReadState.FAILED, error=str(exc), model_version=version, finished_at=timezone.now()
        )
        return
    QuickRead.objects.filter(pk=read.pk, state=QuickReadState.QUEUED).update(
        state=QuickReadState.DONE, model_version=version, boxes=reading["boxes"], finished_at=timezone.now(),
        fracture_probability=reading["fracture_probability"],
    )


def quick_read_json(read: QuickRead) -> dict:
    return {
        "id": read.pk, "state": read.state, "file_name": read.file_name, "width": read.width,
        "height": read.height, "preview_url": read.preview.url, "error": read.error,
        "model_version": read.model_version.name if read.model_version else None,
        "fracture_probability": read.fracture_probability, "boxes": read.boxes,
        "image": read.image_id,
    }


def _own_read(request, pk) -> QuickRead:
    return get_object_or_404(
        QuickRead.objects.filter(user=request.user, dataset__in=visible_datasets(request.user)), pk=pk
    )


@login_required
def quick_read_page(request):
    datasets = visible_datasets(request.user)
    if request.method == "POST":
        dataset = get_object_or_404(datasets, pk=request.POST.get("dataset") or 0)
        uploaded = request.FILES.get("file")
        if uploaded is None:
            messages.error(request, "choose an X-ray file (PNG, JPEG or DICOM)")
        elif production_version(dataset) is None:
            messages.error(request, f"Dataset {dataset.name} has no production model yet: "
                                    "train and promote one before using quick read.")
        else:
            try:
                check_request_size(request.META.get("CONTENT_LENGTH"))
                read = create_quick_read(dataset, request.user, uploaded)
            except (UploadTooLarge, ImageRejected) as exc:
                messages.error(request, f"Refused: {exc}")
            else:
                return redirect("quick-read-result", pk=read.pk)
    recent = QuickRead.objects.filter(user=request.user, dataset__in=datasets)[:10]
    return render(request, "review/quick_read.html", {"datasets": datasets, "recent": recent})


@login_required
def quick_read_result(request, pk):
    read = _own_read(request, pk)
    if request.method == "POST" and read.image_id is None:
        if not can_write(request.user, read.dataset):
            messages.error(request, "only admins and radiologists of this dataset may add images")
        else:
            with default_storage.open(read.upload.name, "rb") as stored:
                stored_image = store_image(read.dataset, stored.read(), read.file_name, source=ImageSource.WEB)
            QuickRead.objects.filter(pk=read.pk).update(image=stored_image.image)
            messages.success(request, f"Added {read.file_name} to {read.dataset.name} for review.")
        return redirect("quick-read-result", pk=read.pk)
    return render(request, "review/quick_read_result.html", {"read": read, "payload": quick_read_json(read)})


@api_view(["GET"])
def quick_read_status(request, pk):
    return Response(quick_read_json(_own_read(request, pk)))
