"""The sign-in throttle: a name or an address is refused after too many recent failures.

Failures are counted from the audit log (``recent_login_failures``), so every web
process shares the count. The backend covers every sign-in path (``/accounts/login/``,
the admin, the token endpoint, HTTP Basic); the form only says it plainly.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as FormValidationError

from annotator.audit.services import client_ip, recent_login_failures


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
        name = str(username if username is not None else kwargs.get(get_user_model().USERNAME_FIELD) or "")
        if login_locked(name, client_ip(request)):
            raise DjangoPermissionDenied("too many failed sign-ins; try again later")
        if "\x00" in name:
            return None  # no user has such a name, and the database cannot compare it
        return super().authenticate(request, username=username, password=password, **kwargs)


class ThrottledAuthenticationForm(AuthenticationForm):
    """The sign-in form, saying plainly when the name or address is locked out (the
    backend enforces the lock either way)."""

    def clean(self):
        username = str(self.data.get("username", ""))[:150]
        if login_locked(username, client_ip(self.request)):
            raise FormValidationError("Too many failed sign-ins. Try again later.", code="locked")
        return super().clean()
