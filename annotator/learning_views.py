from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from annotator.services.datasets import can_administer, visible_datasets


@login_required
def training_dashboard(request, dataset_id):
    """The page renders empty; static/learning/dashboard.js fills it from the dashboard
    API every two seconds (live progress and loss curves)."""
    dataset = get_object_or_404(visible_datasets(request.user), pk=dataset_id)
    return render(
        request,
        "learning/dashboard.html",
        {"dataset": dataset, "can_administer": can_administer(request.user, dataset)},
    )
