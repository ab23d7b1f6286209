"""HTML pages. Thin: each view checks access and calls services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotator.api import export_response
from annotator.forms import UploadForm
from annotator.health import platform_health
from annotator.imaging import ImageRejected
from annotator.models import ImageSource, ReviewStatus, Split, ValidationSplitFrozen
from annotator.services.datasets import can_write, visible_datasets
from annotator.services.uploads import UploadTooLarge, accept_upload, check_request_size


@require_GET
def healthz(request):
    report = platform_health()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


@login_required
def dataset_list(request):
    datasets = visible_datasets(request.user).annotate(image_count=Count("images"))
    return render(request, "annotator/dataset_list.html", {"datasets": datasets})


def _dataset_for(request, pk):
    return get_object_or_404(visible_datasets(request.user), pk=pk)


@login_required
def dataset_detail(request, pk):
    dataset = _dataset_for(request, pk)
    counts = {
        (row["split"], row["status"]): row["n"]
        for row in dataset.images.values("split", "status").annotate(n=Count("id"))
    }
    table = [
        {"split": split, "cells": [counts.get((split.value, status.value), 0) for status in ReviewStatus]}
        for split in Split
    ]
    return render(
        request,
        "annotator/dataset_detail.html",
        {
            "dataset": dataset,
            "statuses": list(ReviewStatus),
            "table": table,
            "splits": list(Split),
            "categories": dataset.categories.all(),
            "recent_images": dataset.images.order_by("-id")[:20],
            "form": UploadForm(),
            "can_write": can_write(request.user, dataset),
        },
    )


@login_required
@require_POST
def dataset_upload(request, pk):
    dataset = _dataset_for(request, pk)
    if not can_write(request.user, dataset):
        return HttpResponseForbidden("only admins and radiologists of this dataset may upload")
    try:
        check_request_size(request.META.get("CONTENT_LENGTH"))
    except UploadTooLarge as exc:
        messages.error(request, str(exc))
        return redirect("dataset-detail", pk=dataset.pk)
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("dataset-detail", pk=dataset.pk)
    for uploaded in form.cleaned_data["files"]:
        try:
            stored = accept_upload(dataset, uploaded, split=form.cleaned_data["split"], source=ImageSource.WEB)
        except (UploadTooLarge, ImageRejected) as exc:
            messages.error(request, f"Refused: {exc}")
        except ValidationSplitFrozen as exc:
            messages.error(request, f"Refused: {' '.join(exc.messages)}")
        else:
            verb = "Added" if stored.created else "Already present:"
            messages.success(request, f"{verb} {uploaded.name} ({stored.image.width}x{stored.image.height}, {stored.image.bit_depth}-bit)")
    return redirect("dataset-detail", pk=dataset.pk)


@login_required
@require_GET
def dataset_export(request, pk):
    return export_response(_dataset_for(request, pk), request.GET.get("split"), request=request)
