"""The review workflow: the worklist, leases, reading sessions and their outcomes,
idempotent saves and reader statistics.

The worklist of a dataset is its sampleable images (never validation or test) in the
order of the latest ``Ranking``, images the ranking does not list coming after it in id
order. A reader holds the image they read through an ``ImageLease``; two readers are
never handed the same image while its lease runs, because the claim is a conditional
update or an insert into a table with one row per image.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotator.models import (
    Annotation,
    AnnotationSource,
    BoxOutcome,
    BoxOutcomeKind,
    Dataset,
    Image,
    ImageLease,
    RankedImage,
    Ranking,
    ReadingOutcome,
    ReadingSession,
    ReviewStatus,
    SaveReceipt,
)
from annotator.services.annotations import delete_box
from annotator.services.versions import policy_for

LEASE_SECONDS = 600
# Images the ranking does not list come after every ranked one, in id order.
UNRANKED_OFFSET = 10**12
CLAIM_ATTEMPTS = 20
MAX_SKIP_REASON = 500

OPEN_STATUSES = (ReviewStatus.UNLABELED, ReviewStatus.PROPOSED, ReviewStatus.IN_REVIEW)
FILTERS = ("todo", "unlabeled", "proposed", "mine", "skipped")
STATUS_OF_OUTCOME = {
    ReadingOutcome.LABELED: ReviewStatus.LABELED,
    ReadingOutcome.NEGATIVE: ReviewStatus.NEGATIVE,
    ReadingOutcome.SKIPPED: ReviewStatus.SKIPPED,
}
# Geometry differences below this many pixels are float noise, not an edit.
EDIT_TOLERANCE_PX = 0.01


class ImageLeased(Exception):
    """Another reader holds the image."""

    def __init__(self, lease: ImageLease):
        super().__init__(
            f"{lease.user.get_username()} is reading this image (until {lease.expires_at:%H:%M:%S} UTC)"
        )
        self.lease = lease


class FinishRefused(ValueError):
    """The image cannot be finished that way yet; the message says what to do."""


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
    ``FILTERS``: *todo* (not yet finished), *unlabeled*, *proposed*, *skipped*, or
    *mine* (images this reader has opened).
    """
    if filter_name not in FILTERS:
        raise ValueError(f"unknown filter {filter_name!r}; use one of {', '.join(FILTERS)}")
    images = Image.objects.filter(dataset=dataset).sampleable()
    images = {
        "todo": lambda q: q.filter(status__in=OPEN_STATUSES),
        "unlabeled": lambda q: q.filter(status=ReviewStatus.UNLABELED),
        "proposed": lambda q: q.filter(status=ReviewStatus.PROPOSED),
        "skipped": lambda q: q.filter(status=ReviewStatus.SKIPPED),
        "mine": lambda q: q.filter(reading_sessions__user=user).distinct(),
    }[filter_name](images)
    latest = _rankings_newest_first(dataset).values("pk")[:1]
    entries = RankedImage.objects.filter(ranking=Subquery(latest), image=OuterRef("pk"))
    return images.annotate(
        rank_position=Subquery(entries.values("position")[:1]),
        rank_score=Subquery(entries.values("score")[:1]),
        queue_key=Coalesce(
            Subquery(entries.values("position")[:1]),
            Value(UNRANKED_OFFSET) + F("id"),
            output_field=models.BigIntegerField(),
        ),
    ).order_by("queue_key")


def _held_by_others(user, now):
    return ImageLease.objects.filter(expires_at__gt=now).exclude(user=user).values("image_id")


def try_lease(image: Image, user, now=None) -> bool:
    """Claim or renew the lease on ``image`` for ``user``; False if another reader holds
    it. A conditional update takes over an expired (or the user's own) lease; otherwise
    the insert succeeds only if no lease row exists (unique image). Safe under
    concurrency without explicit locks."""
    now = now or timezone.now()
    expires = now + timedelta(seconds=LEASE_SECONDS)
    taken = (
        ImageLease.objects.filter(image=image)
        .filter(Q(expires_at__lte=now) | Q(user=user))
        .update(user=user, expires_at=expires, claimed_at=now)
    )
    if taken:
        return True
    try:
        with transaction.atomic():
            ImageLease.objects.create(image=image, user=user, expires_at=expires, claimed_at=now)
    except IntegrityError:
        return False
    return True


def release_other_leases(user, image: Image) -> None:
    """A reader holds one image per dataset at a time."""
    ImageLease.objects.filter(user=user, image__dataset_id=image.dataset_id).exclude(image=image).delete()


def _free_after(dataset: Dataset, user, filter_name: str, after: Image | None, now):
    """The worklist without images others hold, starting after ``after`` when it is
    listed (from the top when it is not), in one query."""
    queue = worklist(dataset, user, filter_name).exclude(id__in=_held_by_others(user, now))
    if after is not None:
        after_key = worklist(dataset, user, filter_name).filter(pk=after.pk).values("queue_key")[:1]
        queue = queue.exclude(pk=after.pk).filter(
            queue_key__gt=Coalesce(Subquery(after_key), Value(-1), output_field=models.BigIntegerField())
        )
    return queue


def upcoming_image_id(dataset: Dataset, user, after: Image, filter_name: str = "todo") -> int | None:
    """The image "next" would most likely hand out after ``after`` (nothing is leased):
    the page prefetches it (boxes and pixels) while the reader works."""
    return _free_after(dataset, user, filter_name, after, timezone.now()).values_list("pk", flat=True).first()


def claim_next(dataset: Dataset, user, filter_name: str = "todo", after: Image | None = None) -> Image | None:
    """The next image of the worklist nobody else is reading, leased to ``user``.

    With ``after`` (the image being left), the image following it in the worklist, or
    the first one when it is no longer listed (it was just finished). None when the
    worklist has nothing free.
    """
    now = timezone.now()
    for image in _free_after(dataset, user, filter_name, after, now).select_related("dataset")[:CLAIM_ATTEMPTS]:
        if try_lease(image, user, now):
            release_other_leases(user, image)
            return image
    return None


def previous_image(dataset: Dataset, user, current: Image | None) -> Image | None:
    """The image this reader opened before ``current`` (by first opening, so going back
    and forth is stable), or their latest one."""
    ids = list(
        ReadingSession.objects.filter(user=user, image__dataset=dataset)
        .values("image_id")
        .annotate(first=models.Min("opened_at"))
        .order_by("first")
        .values_list("image_id", flat=True)
    )
    if current is not None and current.pk in ids:
        ids = ids[: ids.index(current.pk)]
    return Image.objects.select_related("dataset").filter(pk=ids[-1]).first() if ids else None


def open_image(image: Image, user) -> ReadingSession:
    """Lease the image to ``user`` and start (or resume) their reading of it. Raises
    ``ImageLeased`` when another reader holds it."""
    if not try_lease(image, user):
        raise ImageLeased(ImageLease.objects.select_related("user").get(image=image))
    release_other_leases(user, image)
    return start_reading(image, user)


def start_reading(image: Image, user) -> ReadingSession:
    """Start (or resume) the reading of an image ``user`` holds (``open_image``, or
    ``claim_next``, which leases it); an unfinished image becomes *in review*. The
    reading session is unique per open (image, user) in the database, so a double open
    resumes the same one."""
    session = ReadingSession.objects.filter(image=image, user=user, finished_at__isnull=True).first()
    if session is None:
        proposal = (
            image.annotations.filter(source=AnnotationSource.MODEL).exclude(model_version="").order_by("-id").first()
        )
        try:
            with transaction.atomic():
                session = ReadingSession.objects.create(
                    image=image, user=user, opened_at=timezone.now(),
                    model_version=proposal.model_version if proposal else "",
                )
        except IntegrityError:
            session = ReadingSession.objects.get(image=image, user=user, finished_at__isnull=True)
    now = timezone.now()
    if Image.objects.filter(pk=image.pk, status__in=(ReviewStatus.UNLABELED, ReviewStatus.PROPOSED)).update(
        status=ReviewStatus.IN_REVIEW, updated_at=now
    ):
        image.status, image.updated_at = ReviewStatus.IN_REVIEW, now
    return session


def renew_lease(image: Image, user) -> None:
    """Extend the reader's lease (called on every save and by the page's heartbeat)."""
    if not try_lease(image, user):
        raise ImageLeased(ImageLease.objects.select_related("user").get(image=image))


def shown_proposals(image: Image):
    """Model proposals the reader sees: not deleted and at least the display threshold."""
    return image.annotations.filter(
        source=AnnotationSource.MODEL, is_deleted=False, score__gte=policy_for(image.dataset).display_threshold
    )


def finish_image(image: Image, user, outcome: str, reason: str = "") -> ReadingSession:
    """Finish the reader's open session: *labeled* (every shown proposal accepted or
    deleted, at least one box), *negative* (no human box; shown proposals are deleted)
    or *skipped* (a reason is required). Sets the image status, records each box's
    outcome, releases the lease. Locks the image row so two finishes cannot interleave.
    Raises ``FinishRefused`` or ``ImageLeased`` and then changes nothing."""
    if outcome not in STATUS_OF_OUTCOME:
        raise FinishRefused(f"outcome must be one of {', '.join(STATUS_OF_OUTCOME)}")
    reason = (reason or "").strip()
    if outcome == ReadingOutcome.SKIPPED and not reason:
        raise FinishRefused("say why the image is skipped")
    if len(reason) > MAX_SKIP_REASON:
        raise FinishRefused(f"the reason is over {MAX_SKIP_REASON} characters")
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        session = ReadingSession.objects.filter(image=image, user=user, finished_at__isnull=True).first()
        if session is None:
            raise FinishRefused("this image is not open for you: open it first")
        renew_lease(image, user)
        human = image.annotations.filter(source=AnnotationSource.HUMAN, is_deleted=False)
        pending = shown_proposals(image)
        if outcome == ReadingOutcome.LABELED:
            if pending.exists():
                raise FinishRefused(f"{pending.count()} proposal(s) are still pending: accept or delete them")
            if not human.exists():
                raise FinishRefused("there is no box: mark the image 'no fracture' instead")
        if outcome == ReadingOutcome.NEGATIVE:
            if human.exists():
                raise FinishRefused(f"{human.count()} confirmed box(es) remain: delete them first")
            for proposal in pending:
                delete_box(proposal.pk, proposal.version, user, reason="no fracture")
        image.status = STATUS_OF_OUTCOME[outcome]
        image.skip_reason = reason if outcome == ReadingOutcome.SKIPPED else ""
        image.save(update_fields=["status", "skip_reason", "updated_at"])
        session.finished_at = timezone.now()
        session.outcome = outcome
        session.skip_reason = image.skip_reason
        session.save(update_fields=["finished_at", "outcome", "skip_reason"])
        record_box_outcomes(session)
        ImageLease.objects.filter(image=image, user=user).delete()
    return session


def _moved(a: dict, b: dict, keys: tuple[str, ...]) -> bool:
    return any(abs(a[k] - b[k]) > EDIT_TOLERANCE_PX for k in keys)


def box_outcome(origin: dict, final: dict) -> str | None:
    """What the reading did to one box, from its first and current snapshots (None for
    a box the reader drew and removed again)."""
    if origin["source"] == AnnotationSource.HUMAN:
        return None if final["is_deleted"] else BoxOutcomeKind.ADDED
    if final["is_deleted"]:
        return BoxOutcomeKind.DELETED
    if _moved(origin, final, ("w", "h")):
        return BoxOutcomeKind.RESIZED
    if _moved(origin, final, ("x", "y")):
        return BoxOutcomeKind.MOVED
    if origin["category"] != final["category"]:
        return BoxOutcomeKind.RECLASSIFIED
    return BoxOutcomeKind.ACCEPTED


def record_box_outcomes(session: ReadingSession) -> list[BoxOutcome]:
    """One ``BoxOutcome`` per box the reader touched during the session (any revision by
    them since it opened)."""
    touched = Annotation.objects.filter(
        image=session.image, revisions__actor=session.user, revisions__created_at__gte=session.opened_at
    ).distinct().select_related("category")
    outcomes = []
    for annotation in touched:
        origin = annotation.revisions.order_by("version").first().after
        kind = box_outcome(origin, annotation.snapshot())
        if kind is not None:
            outcomes.append(BoxOutcome(session=session, annotation=annotation, kind=kind,
                                       model_version=origin.get("model_version") or ""))
    return BoxOutcome.objects.bulk_create(outcomes)


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), body])).hexdigest()


def idempotent(user, key, fingerprint: str, produce: Callable[[], tuple[int, dict]]) -> tuple[int, dict]:
    """Run ``produce`` (a write answering ``(status, body)``) once per (user, key).

    The write and its ``SaveReceipt`` commit in one transaction; a retry is answered from
    the receipt. When two requests with one key race, the second's receipt insert hits
    the unique constraint after the first commits; its write is rolled back with it and
    it answers the first one's receipt. A key reused for a different request gets 422.
    """
    receipt = SaveReceipt.objects.filter(user=user, key=key).first()
    if receipt is None:
        try:
            with transaction.atomic():
                status, body = produce()
                SaveReceipt.objects.create(user=user, key=key, fingerprint=fingerprint,
                                           status_code=status, body=body)
            return status, body
        except IntegrityError:
            receipt = SaveReceipt.objects.filter(user=user, key=key).first()
            if receipt is None:
                raise
    if receipt.fingerprint != fingerprint:
        return 422, {"detail": "this Idempotency-Key was already used for a different request"}
    return receipt.status_code, receipt.body


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
        versions[s.model_version or "(no proposals)"].append(s)

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
