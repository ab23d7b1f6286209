"""Writing and reading the audit log (``AuditEvent``).

``record_event`` is the one way rows are written; call it from views, services and
signal receivers. It never raises because of the request (a missing address or agent is
stored empty), and it writes inside the caller's transaction, so an audited change that
rolls back leaves no event.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from django.db.models import Model
from django.utils import timezone

from annotator.models import AuditAction, AuditEvent

USER_AGENT_LIMIT = 300


def client_ip(request) -> str | None:
    """The peer address Django saw. ``X-Forwarded-For`` is not trusted here: behind a
    proxy, the proxy must set ``REMOTE_ADDR`` (gunicorn's ``forwarded_allow_ips``)."""
    if request is None:
        return None
    raw = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def _actor(request, actor):
    if actor is None and request is not None:
        # the Django request under a DRF one: reading DRF's ``user`` while it is still
        # authenticating (a failed sign-in signal) would authenticate again, recursively
        user = getattr(getattr(request, "_request", request), "user", None)
        if user is not None and user.is_authenticated:
            return user
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def record_event(
    request_or_none,
    actor,
    action: str,
    *,
    dataset=None,
    obj: Model | None = None,
    details: dict | None = None,
    actor_username: str = "",
) -> AuditEvent:
    """Append one event. ``actor`` defaults to the request's user; ``obj`` gives the
    object type and id; ``actor_username`` overrides the stored name (failed sign-ins)."""
    request = request_or_none
    user = _actor(request, actor)
    agent = request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_LIMIT] if request is not None else ""
    return AuditEvent.objects.create(
        actor=user,
        actor_username=actor_username or (user.get_username() if user else ""),
        action=action,
        dataset=dataset,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        details=details or {},
        ip=client_ip(request),
        user_agent=agent,
    )


def record_revision(revision) -> AuditEvent:
    """``annotation_changed`` for one ``AnnotationRevision``, with its before/after.
    Revisions saved one by one are recorded by a ``post_save`` receiver
    (``annotator.audit_signals``); callers that create boxes in bulk call this for the
    revisions they want audited."""
    annotation = revision.annotation
    return record_event(
        None,
        revision.actor,
        AuditAction.ANNOTATION_CHANGED,
        dataset=annotation.image.dataset,
        obj=annotation,
        details={
            "image": annotation.image_id,
            "version": revision.version,
            "revision_action": revision.action,
            "reason": revision.reason,
            "before": revision.before,
            "after": revision.after,
        },
    )


def recent_login_failures(*, username: str = "", ip: str | None = None, window: timedelta) -> int:
    """Failed sign-ins for ``username`` (or from ``ip``) within ``window`` and after the
    last successful sign-in of that name (or from that address)."""
    since = timezone.now() - window
    scope = {"actor_username": username} if username else {"ip": ip}
    last_success = (
        AuditEvent.objects.filter(action=AuditAction.LOGIN_SUCCEEDED, at__gte=since, **scope)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    after = {"at__gt": last_success} if last_success else {"at__gte": since}
    return AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED, **after, **scope).count()
