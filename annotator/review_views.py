"""HTML pages of the review workflow. Thin: access checks and services; the reading page
itself is a JavaScript application (``static/review/``) talking to ``review_api``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from annotator.services import review
from annotator.services.datasets import can_write, visible_datasets

WORKLIST_ROWS = 100


def _dataset(request, pk):
    return get_object_or_404(visible_datasets(request.user), pk=pk)


@login_required
def home(request):
    return render(request, "review/home.html", {"datasets": visible_datasets(request.user)})


@login_required
def worklist(request, pk):
    dataset = _dataset(request, pk)
    filter_name = request.GET.get("filter", "todo")
    if filter_name not in review.FILTERS:
        filter_name = "todo"
    rows = review.worklist(dataset, request.user, filter_name).select_related("lease__user")[:WORKLIST_ROWS]
    return render(request, "review/worklist.html", {
        "dataset": dataset,
        "ranking": review.latest_ranking(dataset),
        "filters": review.FILTERS,
        "filter": filter_name,
        "rows": rows,
        "can_write": can_write(request.user, dataset),
        "now": timezone.now(),
    })


@login_required
def reader(request, pk):
    dataset = _dataset(request, pk)
    filter_name = request.GET.get("filter", "todo")
    if filter_name not in review.FILTERS:
        filter_name = "todo"
    writable = can_write(request.user, dataset)
    return render(request, "review/reader.html", {
        "dataset": dataset,
        "can_write": writable,
        "filter": filter_name,
        "config": {"dataset": dataset.pk, "user": request.user.pk, "filter": filter_name, "canWrite": writable},
    })


@login_required
def stats(request, pk):
    dataset = _dataset(request, pk)
    stats = review.reader_stats(dataset)
    tables = [("Readers", stats["readers"]), ("Model versions", stats["model_versions"])]
    return render(request, "review/stats.html", {"dataset": dataset, "tables": tables})
