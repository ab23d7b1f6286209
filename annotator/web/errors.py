"""The HTTP edge's one exception handler (DRF's ``EXCEPTION_HANDLER``).

- Domain errors (``annotator.errors``) become JSON answers with the status of their kind
  (``HTTP_STATUS``): ``{"detail": message, ...details}``.
- A lost database is a JSON 503 with ``Retry-After``, not an HTML 500; a value the
  database cannot hold (a NUL character in a name, a header or a path) is a 400.
- Refusals (401/403/404) are written to the audit log as ``access_denied``.
- Everything else is DRF's default.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.errors import DomainError, http_status

AUDITED_REFUSALS = (
    exceptions.NotAuthenticated,
    exceptions.AuthenticationFailed,
    exceptions.PermissionDenied,
    exceptions.NotFound,
    Http404,
    DjangoPermissionDenied,
)


# Seconds a client is asked to wait after the database was unreachable.
DATABASE_RETRY_AFTER_SECONDS = 30


def database_response(error: BaseException) -> Response | None:
    """The answer to a database error that is not a bug of ours, or None."""
    if isinstance(error, OperationalError | InterfaceError):
        return Response({"detail": "the database is unavailable; try again shortly"}, status=503,
                        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    if isinstance(error, DataError):
        return Response({"detail": "the request holds a value that cannot be stored or searched for "
                                   "(a NUL character, or a number out of range)"}, status=400)
    return None


def error_body(error: BaseException) -> dict:
    messages = getattr(error, "messages", None) if isinstance(error, DjangoValidationError) else None
    detail = " ".join(messages) if messages else str(error)
    return {"detail": detail, **(error.details() if isinstance(error, DomainError) else {})}


def domain_response(error: BaseException) -> Response | None:
    """The answer to a domain error, or None when ``error`` is not one."""
    status = http_status(error)
    return Response(error_body(error), status=status) if status is not None else None


def exception_handler(exc, context):
    response = domain_response(exc) or database_response(exc) or drf_exception_handler(exc, context)
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
