"""HTML pages of the learning area: the training dashboard and quick read."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.shortcuts import get_object_or_404, redirect, render

from annotator.datasets import access
from annotator.datasets.models import ImageSource
from annotator.datasets.services.ingest import add_image, check_request_size
from annotator.errors import DomainError
from annotator.learning.models import QuickRead
from annotator.learning.serializers import QuickReadSerializer
from annotator.learning.services.analysis import create_quick_read


@login_required
def training_dashboard(request, dataset_id):
    """The page renders empty; static/learning/dashboard.js fills it from the dashboard
    API every two seconds (live progress and loss curves)."""
    dataset = access.dataset_for(request.user, dataset_id)
    return render(
        request,
        "learning/dashboard.html",
        {"dataset": dataset, "can_administer": access.has_role(request.user, dataset, access.ADMIN)},
    )


def _own_read(request, pk) -> QuickRead:
    return get_object_or_404(
        QuickRead.objects.filter(user=request.user, dataset__in=access.visible_datasets(request.user)), pk=pk
    )


@login_required
def quick_read_page(request):
    datasets = access.visible_datasets(request.user)
    if request.method == "POST":
        dataset = access.dataset_for(request.user, request.POST.get("dataset") or 0, access.WRITE)
        uploaded = request.FILES.get("file")
        if uploaded is None:
            messages.error(request, "choose an X-ray file (PNG, JPEG or DICOM)")
        else:
            try:
                check_request_size(request.META.get("CONTENT_LENGTH"))
                read = create_quick_read(dataset, request.user, uploaded)
            except DomainError as exc:
                messages.error(request, f"Refused: {exc}")
            else:
                return redirect("quick-read-result", pk=read.pk)
    recent = QuickRead.objects.filter(user=request.user, dataset__in=datasets)[:10]
    return render(request, "review/quick_read.html", {"datasets": datasets, "recent": recent})


@login_required
def quick_read_result(request, pk):
    read = _own_read(request, pk)
    if request.method == "POST" and read.image_id is None:
        if not access.has_role(request.user, read.dataset, access.WRITE):
            messages.error(request, "only admins and radiologists of this dataset may add images")
        else:
            with default_storage.open(read.upload.name, "rb") as stored:
                stored_image = add_image(read.dataset, stored.read(), read.file_name, source=ImageSource.WEB)
            QuickRead.objects.filter(pk=read.pk).update(image=stored_image.image)
            messages.success(request, f"Added {read.file_name} to {read.dataset.name} for review.")
        return redirect("quick-read-result", pk=read.pk)
    return render(request, "review/quick_read_result.html", {"read": read, "payload": QuickReadSerializer(read).data})
