"""HTML pages of the review workflow. Thin: access checks and services; the reading page
itself is a JavaScript application (``static/review/``) talking to ``review_api``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils import timezone

from annotator.datasets import access
from annotator.review import selectors
from annotator.review.services.stats import reader_stats

WORKLIST_ROWS = 100


def _filter(request) -> str:
    name = request.GET.get("filter", "todo")
    return name if name in selectors.FILTERS else "todo"


@login_required
def home(request):
    return render(request, "review/home.html", {"datasets": access.visible_datasets(request.user)})


@login_required
def worklist(request, pk):
    dataset = access.dataset_for(request.user, pk)
    filter_name = _filter(request)
    rows = selectors.worklist(dataset, request.user, filter_name).select_related("lease__user")
    page = Paginator(rows, WORKLIST_ROWS).get_page(request.GET.get("page"))
    return render(request, "review/worklist.html", {
        "dataset": dataset,
        "ranking": selectors.latest_ranking(dataset),
        "filters": selectors.FILTERS,
        "filter": filter_name,
        "rows": page,
        "page": page,
        "can_write": access.has_role(request.user, dataset, access.WRITE),
        "now": timezone.now(),
    })


@login_required
def reader(request, pk):
    dataset = access.dataset_for(request.user, pk)
    filter_name = _filter(request)
    writable = access.has_role(request.user, dataset, access.WRITE)
    return render(request, "review/reader.html", {
        "dataset": dataset,
        "can_write": writable,
        "filter": filter_name,
        "config": {"dataset": dataset.pk, "user": request.user.pk, "filter": filter_name, "canWrite": writable},
    })


@login_required
def stats(request, pk):
    dataset = access.dataset_for(request.user, pk)
    stats = reader_stats(dataset)
    tables = [("Readers", stats["readers"]), ("Model versions", stats["model_versions"])]
    return render(request, "review/stats.html", {"dataset": dataset, "tables": tables})
