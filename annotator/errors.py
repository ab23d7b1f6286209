"""Domain errors, and the one table that says which HTTP status answers each kind.

Services raise these (their messages say why, in words a reader can act on); the HTTP
edge turns them into responses in one place (``annotator.web.errors``), and management
commands into ``CommandError``. A domain error never carries an HTTP status itself: the
kind does, through ``HTTP_STATUS``.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal the caller can act on; ``str(error)`` says why."""

    def details(self) -> dict:
        """Extra fields for the answer besides ``detail`` (e.g. the current state)."""
        return {}


class InvalidInput(DomainError, ValueError):
    """The request cannot be carried out as sent."""


class NotPermitted(DomainError):
    """The user's role does not allow it."""


class Conflict(DomainError):
    """The stored state does not allow it now (a stale version, an active run...)."""


class TooLarge(DomainError, ValueError):
    """Over a configured size limit."""


class Unavailable(DomainError):
    """A service the request needs (a worker, the broker, a model) is not there."""


HTTP_STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400,
    NotPermitted: 403,
    Conflict: 409,
    TooLarge: 413,
    Unavailable: 503,
}


def http_status(error: BaseException) -> int | None:
    """The status answering ``error`` (by its nearest kind), or None for other errors."""
    for kind in type(error).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return None
