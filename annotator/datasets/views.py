"""HTML pages. Thin: each view checks access and calls services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotator.datasets import access
from annotator.datasets.api import export_response
from annotator.datasets.forms import UploadForm
from annotator.datasets.models import ImageSource, ReviewStatus, Split, ValidationSplitFrozen
from annotator.datasets.services.ingest import accept_upload, check_request_size
from annotator.errors import DomainError
from annotator.web.throttles import UploadThrottle

# The latest imports the dataset page shows, with their reports.
IMPORTS_SHOWN = 5


@login_required
def dataset_list(request):
    datasets = access.visible_datasets(request.user).annotate(image_count=Count("images"))
    return render(request, "annotator/dataset_list.html", {"datasets": datasets})


@login_required
def dataset_detail(request, pk):
    dataset = access.dataset_for(request.user, pk)
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
            "imports": dataset.imports.select_related("actor")[:IMPORTS_SHOWN],
            "form": UploadForm(),
            "can_write": access.has_role(request.user, dataset, access.WRITE),
        },
    )


@login_required
@require_POST
def dataset_upload(request, pk):
    dataset = access.dataset_for(request.user, pk, access.WRITE)
    if not UploadThrottle().allow_request(request, None):
        messages.error(request, "Too many uploads in a short time; wait a minute and try again.")
        return redirect("dataset-detail", pk=dataset.pk)
    try:
        check_request_size(request.META.get("CONTENT_LENGTH"))
    except DomainError as exc:
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
        except ValidationSplitFrozen as exc:
            messages.error(request, f"Refused: {' '.join(exc.messages)}")
        except DomainError as exc:
            messages.error(request, f"Refused: {exc}")
        else:
            verb = "Added" if stored.created else "Already present:"
            messages.success(request, f"{verb} {uploaded.name} ({stored.image.width}x{stored.image.height}, {stored.image.bit_depth}-bit)")
    return redirect("dataset-detail", pk=dataset.pk)


@login_required
@require_GET
def dataset_export(request, pk):
    return export_response(access.dataset_for(request.user, pk), request.GET.get("split"), request=request)
