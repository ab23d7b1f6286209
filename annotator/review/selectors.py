"""Reads of the review area: the worklist of a dataset in the order of its latest ranking.

The worklist is the dataset's sampleable images (never validation or test) in the order
of the latest ``Ranking``, images the ranking does not list coming after it in id order.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from annotator.datasets.models import Dataset, Image, ReviewStatus
from annotator.learning.models import RankedImage, Ranking
from annotator.review.models import ReadingSession

# Images the ranking does not list come after every ranked one, in id order.
UNRANKED_OFFSET = 10**12
FILTERS = ("todo", "new", "unlabeled", "proposed", "not_ranked", "mine", "skipped", "conflicts")


def _rankings_newest_first(dataset: Dataset):
    return Ranking.objects.filter(dataset=dataset).order_by("-created_at", "-id")


def latest_ranking(dataset: Dataset) -> Ranking | None:
    return _rankings_newest_first(dataset).first()


def ranking_of(image: Image) -> Ranking | None:
    """The latest ranking of the image's dataset, with the image's ``position`` and
    ``score`` in it (None when it does not list the image), in one query."""
    entry = RankedImage.objects.filter(ranking=OuterRef("pk"), image=image)
    return _rankings_newest_first(image.dataset).annotate(
        position=Subquery(entry.values("position")[:1]), score=Subquery(entry.values("score")[:1]),
    ).first()


def worklist(dataset: Dataset, user, filter_name: str = "todo"):
    """The dataset's images to read, most informative first.

    Each row carries ``queue_key`` (its place), ``rank_position`` and ``rank_score``
    (None when the latest ranking does not list it). ``filter_name`` is one of
    ``FILTERS``: *todo* (not yet finished), *new* (not yet finished and never opened by
    any reader), *unlabeled*, *proposed*, *not_ranked* (still to
    read and not in the latest ranking: new uploads wait here until the next ranking),
    *skipped*, *mine*
    (images this reader has opened), or *conflicts* (copies whose labels disagree, until
    a reader finishes the image as labeled or negative; a skipped one stays listed).
    """
    if filter_name not in FILTERS:
        raise ValueError(f"unknown filter {filter_name!r}; use one of {', '.join(FILTERS)}")
    sampleable = Image.objects.filter(dataset=dataset).sampleable()
    images = {  # querysets are lazy: only the chosen one runs
        "todo": sampleable.filter(status__in=ReviewStatus.unfinished()),
        "unlabeled": sampleable.filter(status=ReviewStatus.UNLABELED),
        "proposed": sampleable.filter(status=ReviewStatus.PROPOSED),
        "new": sampleable.filter(status__in=ReviewStatus.unfinished()).exclude(
            pk__in=ReadingSession.objects.values("image_id")
        ),
        "skipped": sampleable.filter(status=ReviewStatus.SKIPPED),
        "mine": sampleable.filter(reading_sessions__user=user).distinct(),
        # every split: a conflict in the validation or test split is ground truth to settle
        "conflicts": Image.objects.filter(dataset=dataset).exclude(conflict=""),
        "not_ranked": sampleable.none(),  # below: it needs the latest ranking
    }[filter_name]
    latest = _rankings_newest_first(dataset).values("pk")[:1]
    entries = RankedImage.objects.filter(ranking=Subquery(latest), image=OuterRef("pk"))
    if filter_name == "not_ranked":
        images = sampleable.filter(status__in=ReviewStatus.unfinished()).exclude(
            pk__in=RankedImage.objects.filter(ranking=Subquery(latest)).values("image_id")
        )
    return images.annotate(
        rank_position=Subquery(entries.values("position")[:1]),
        rank_score=Subquery(entries.values("score")[:1]),
        queue_key=Coalesce(
            Subquery(entries.values("position")[:1]),
            Value(UNRANKED_OFFSET) + F("id"),
            output_field=models.BigIntegerField(),
        ),
    ).order_by("queue_key")
