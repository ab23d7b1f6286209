"""The review workflow: the worklist, leases, reading sessions and their outcomes,
idempotent saves and reader statistics.

The worklist of a dataset is its sampleable images (never validation or test) in the
order of the latest ``Ranking``, images the ranking does not list coming after it in id
order. A reader holds the image they read through an ``ImageLease``; two readers are
never handed the same image while its lease runs, because the claim is a conditional
update or an insert into a table with one row per image.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.db.models import Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets.models import (
    Annotation,
    AnnotationSource,
    Dataset,
    Image,
    ReviewStatus,
    snapshot_serving_version,
)
from annotator.datasets.services.annotations import delete_box
from annotator.errors import Conflict, InvalidInput
from annotator.learning.selectors import policy_of
from annotator.review.models import (
    BoxOutcome,
    BoxOutcomeKind,
    ImageLease,
    ReadingOutcome,
    ReadingSession,
)
from annotator.review.selectors import worklist

LEASE_SECONDS = 600
CLAIM_ATTEMPTS = 20
MAX_SKIP_REASON = 500

STATUS_OF_OUTCOME = {
    ReadingOutcome.LABELED: ReviewStatus.LABELED,
    ReadingOutcome.NEGATIVE: ReviewStatus.NEGATIVE,
    ReadingOutcome.SKIPPED: ReviewStatus.SKIPPED,
}
# Geometry differences below this many pixels are float noise, not an edit.
EDIT_TOLERANCE_PX = 0.01


class ImageLeased(Conflict):
    """Another reader holds the image."""

    def __init__(self, lease: ImageLease):
        super().__init__(
            f"{lease.user.get_username()} is reading this image (until {lease.expires_at:%H:%M:%S} UTC)"
        )
        self.lease = lease


class FinishRefused(InvalidInput):
    """The image cannot be finished that way yet; the message says what to do."""


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
            image.annotations.filter(source=AnnotationSource.MODEL).exclude(serving_version="").order_by("-id").first()
        )
        try:
            with transaction.atomic():
                session = ReadingSession.objects.create(
                    image=image, user=user, opened_at=timezone.now(),
                    serving_version=proposal.serving_version if proposal else "",
                )
        except IntegrityError:
            session = ReadingSession.objects.get(image=image, user=user, finished_at__isnull=True)
    now = timezone.now()
    if Image.objects.filter(pk=image.pk, status__in=ReviewStatus.waiting()).update(
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
        source=AnnotationSource.MODEL, is_deleted=False, score__gte=policy_of(image.dataset).display_threshold
    )


def finish_image(image: Image, user, outcome: str, reason: str = "") -> ReadingSession:
    """Finish the reader's open session: *labeled* (every shown proposal accepted or
    deleted, at least one box), *negative* (no human box; shown proposals are deleted)
    or *skipped* (a reason is required). Sets the image status, records each box's
    outcome, releases the lease. Locks the image row so two finishes cannot interleave.
    Finishing an image whose copies disagree (``Image.conflict``) as *labeled* or
    *negative* settles the conflict (``settle_conflict``); skipping leaves it open.
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
        if image.conflict and outcome != ReadingOutcome.SKIPPED:
            settle_conflict(image, session)
        ImageLease.objects.filter(image=image, user=user).delete()
    return session


def settle_conflict(image: Image, session: ReadingSession) -> None:
    """The reader's finish decides an image whose copies disagreed: the conflict is
    cleared, and an audit event keeps what it was, the outcome and the reading session
    (the boxes the reader kept or deleted have their own revisions)."""
    record_event(
        None, session.user, AuditAction.ANNOTATION_CHANGED, dataset=image.dataset, obj=image,
        details={"conflict_settled": image.conflict, "outcome": session.outcome, "reading_session": session.pk},
    )
    image.conflict = ""
    image.save(update_fields=["conflict", "updated_at"])


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
                                       serving_version=snapshot_serving_version(origin)))
    return BoxOutcome.objects.bulk_create(outcomes)


def release_abandoned_readings(now=None) -> int:
    """Images a reader opened and left without finishing go back to the pool once their
    lease has run out (unlabeled, or proposed when model proposals are there), so a new
    model proposes for them and rankings order them again. Their reading sessions stay
    open: the reader resumes where they were if they come back. Returns how many."""
    now = now or timezone.now()
    held = ImageLease.objects.filter(expires_at__gt=now).values("image_id")
    abandoned = Image.objects.filter(status=ReviewStatus.IN_REVIEW).exclude(pk__in=held)
    proposed = Annotation.objects.filter(source=AnnotationSource.MODEL, is_deleted=False).values("image_id")
    back = abandoned.filter(pk__in=proposed).update(status=ReviewStatus.PROPOSED, updated_at=now)
    return back + abandoned.update(status=ReviewStatus.UNLABELED, updated_at=now)
