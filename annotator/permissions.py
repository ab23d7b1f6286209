"""Who may do what, per dataset, and what happens when they may not.

Roles (``Membership.role``): *admin* manages the dataset, its members, schedules and
promotions; *radiologist* reads and annotates; *viewer* only reads. Objects of datasets
the user is not a member of are outside every queryset, so they answer 404 (never 403,
which would confirm that they exist).

Also here: the audited exception handler (refusals are logged) and the sign-in
throttle (an authentication backend that refuses a name or an address after too many
recent failures, counted from the audit log, so the count is shared by every process).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as FormValidationError
from django.http import Http404
from rest_framework import exceptions, permissions
from rest_framework.views import exception_handler

from annotator.models import AuditAction, Dataset, Role
from annotator.services.audit import client_ip, recent_login_failures, record_event
from annotator.services.datasets import role_of

READ_ROLES = frozenset(Role.values)
WRITE_ROLES = frozenset({Role.ADMIN, Role.RADIOLOGIST})
ADMIN_ROLES = frozenset({Role.ADMIN})


def dataset_of(obj) -> Dataset:
    """The dataset an API object belongs to (the object itself for a dataset)."""
    if isinstance(obj, Dataset):
        return obj
    if hasattr(obj, "dataset"):
        return obj.dataset
    if hasattr(obj, "image"):
        return obj.image.dataset
    raise TypeError(f"{type(obj).__name__} has no dataset")


class DatasetRole(permissions.BasePermission):
    """Object permission by the user's role in the object's dataset.

    Safe methods need any role; other methods need a role in the view's
    ``action_roles[action]`` (admins only unless the view says otherwise). The check runs before
    the request body is read, so a PATCH without permission is refused even when it
    would change nothing.
    """

    message = "your role in this dataset does not allow this"

    def has_object_permission(self, request, view, obj) -> bool:
        role = role_of(request.user, dataset_of(obj))
        if request.method in permissions.SAFE_METHODS:
            return role in READ_ROLES
        return role in getattr(view, "action_roles", {}).get(getattr(view, "action", None), ADMIN_ROLES)


def require_role(user, dataset: Dataset, roles: frozenset[str], what: str) -> None:
    """Raise DRF's 403 unless the user has one of ``roles`` in ``dataset``."""
    if role_of(user, dataset) not in roles:
        raise exceptions.PermissionDenied(f"your role in this dataset does not allow {what}")


# --- refusals are audited ---------------------------------------------------------------

AUDITED_REFUSALS = (
    exceptions.NotAuthenticated,
    exceptions.AuthenticationFailed,
    exceptions.PermissionDenied,
    exceptions.NotFound,
    Http404,
    DjangoPermissionDenied,
)


def audited_exception_handler(exc, context):
    """DRF's handler, plus an ``access_denied`` audit event for 401/403/404."""
    response = exception_handler(exc, context)
    request = context.get("request")
    if response is not None and isinstance(exc, AUDITED_REFUSALS) and request is not None:
        view = context.get("view")
        record_event(
            request,
            None,
            AuditAction.ACCESS_DENIED,
            details={
                "status": response.status_code,
                "method": request.method,
                "path": request.path[:300],
                "view": type(view).__name__ if view is not None else "",
                "reason": str(getattr(exc, "detail", exc))[:300],
            },
        )
    return response


# --- sign-in throttle -------------------------------------------------------------------


def login_locked(username: str, ip: str | None) -> bool:
    """Too many recent failures for this name, or from this address."""
    window = timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    if username and recent_login_failures(username=username, window=window) >= settings.LOGIN_FAILURE_LIMIT:
        return True
    return bool(ip) and (
        recent_login_failures(ip=ip, window=window) >= settings.LOGIN_FAILURE_LIMIT_PER_IP
    )


class ThrottledModelBackend(ModelBackend):
    """Django's model backend that refuses while the name or address is locked.

    Raising ``PermissionDenied`` stops Django trying other backends and sends
    ``user_login_failed``, so a refused attempt is logged (and counted) like a wrong
    password. It covers every sign-in path: ``/accounts/login/``, the admin, the token
    endpoint and HTTP Basic.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        name = username if username is not None else kwargs.get(get_user_model().USERNAME_FIELD, "")
        if login_locked(str(name or ""), client_ip(request)):
            raise DjangoPermissionDenied("too many failed sign-ins; try again later")
        return super().authenticate(request, username=username, password=password, **kwargs)


class ThrottledAuthenticationForm(AuthenticationForm):
    """The sign-in form, saying plainly when the name or address is locked out (the
    backend enforces the lock either way)."""

    def clean(self):
        username = str(self.data.get("username", ""))[:150]
        if login_locked(username, client_ip(self.request)):
            raise FormValidationError("Too many failed sign-ins. Try again later.", code="locked")
        return super().clean()
