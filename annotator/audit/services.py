"""Writing and reading the audit log (``AuditEvent``).

``record_event`` is the one way rows are written; call it from views, services and
signal receivers. It never raises because of the request (a missing address or agent is
stored empty), and it writes inside the caller's transaction, so an audited change that
rolls back leaves no event.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db.models import Model
from django.utils import timezone

from annotator.audit.models import AuditAction, AuditEvent

USER_AGENT_LIMIT = 300


@cache
def _trusted_proxies(configured: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in configured)


def _address(raw: str):
    try:
        return ipaddress.ip_address(raw.strip())
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client's address: the peer Django saw, or, when that peer is one of
    ``TRUSTED_PROXIES``, the nearest ``X-Forwarded-For`` entry that is not a trusted
    proxy (entries left of it were written by the client and prove nothing)."""
    if request is None:
        return None
    address = _address(request.META.get("REMOTE_ADDR", ""))
    proxies = _trusted_proxies(tuple(settings.TRUSTED_PROXIES))
    forwarded = [entry for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    while address is not None and forwarded and any(address in network for network in proxies):
        address = _address(forwarded.pop())
    return str(address) if address is not None else None


def storable(value):
    """``value`` with NUL characters removed from every string in it: PostgreSQL text
    and JSON cannot hold them, and a name or path sent with one must still be logged."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


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
    agent = request.META.get("HTTP_USER_AGENT", "") if request is not None else ""
    return AuditEvent.objects.create(
        actor=user,
        actor_username=storable(actor_username or (user.get_username() if user else ""))[:150],
        action=action,
        dataset=dataset,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        details=storable(details or {}),
        ip=client_ip(request),
        user_agent=storable(agent)[:USER_AGENT_LIMIT],
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
    """Failed sign-ins within ``window`` for ``username``, counted after that name's last
    successful sign-in, or from ``ip``, all of them: a success resets the count of its
    own name only, never the address's (else one good account would unlock guessing
    at every other name from that address)."""
    since = timezone.now() - window
    failures = AuditEvent.objects.filter(action=AuditAction.LOGIN_FAILED, at__gte=since)
    if not username:
        return failures.filter(ip=ip).count()
    username = storable(username)[:150]
    last_success = (
        AuditEvent.objects.filter(action=AuditAction.LOGIN_SUCCEEDED, at__gte=since, actor_username=username)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    failures = failures.filter(actor_username=username)
    return (failures.filter(at__gt=last_success) if last_success else failures).count()
