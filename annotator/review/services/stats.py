"""Reader statistics: per reader and per model version, how fast and how often proposals
were accepted unchanged."""

from __future__ import annotations

import statistics
from collections import defaultdict

from annotator.datasets.models import Dataset
from annotator.review.models import BoxOutcome, BoxOutcomeKind, ReadingSession


def _summary(sessions: list[ReadingSession], outcomes: list[BoxOutcome]) -> dict:
    seconds = [s.seconds for s in sessions]
    proposals = [o for o in outcomes if o.kind != BoxOutcomeKind.ADDED]
    counts = defaultdict(int)
    for o in outcomes:
        counts[o.kind] += 1
    accepted = counts[BoxOutcomeKind.ACCEPTED]
    return {
        "images_read": len({s.image_id for s in sessions}),
        "readings": len(sessions),
        "median_seconds": statistics.median(seconds) if seconds else None,
        "proposals_reviewed": len(proposals),
        "accepted_unchanged": accepted,
        "accepted_unchanged_share": accepted / len(proposals) if proposals else None,
        "outcomes": {kind: counts[kind] for kind in BoxOutcomeKind.values},
    }


def reader_stats(dataset: Dataset) -> dict:
    """Per reader and per model version: images read, median seconds per image, share
    of the proposals they saw that were accepted unchanged."""
    sessions = list(
        ReadingSession.objects.filter(image__dataset=dataset, finished_at__isnull=False).select_related("user")
    )
    outcomes = list(BoxOutcome.objects.filter(session__in=[s.pk for s in sessions]))
    by_session = defaultdict(list)
    for o in outcomes:
        by_session[o.session_id].append(o)
    readers, versions = defaultdict(list), defaultdict(list)
    for s in sessions:
        readers[s.user.get_username()].append(s)
        versions[s.serving_version or "(no proposals)"].append(s)

    def rows(groups):
        return [
            {"name": name, **_summary(group, [o for s in group for o in by_session[s.pk]])}
            for name, group in sorted(groups.items())
        ]

    return {
        "readers": rows(readers),
        "model_versions": rows(versions),
        "overall": _summary(sessions, outcomes),
    }
