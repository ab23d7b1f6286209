"""Allow-list filtering for list endpoints.

A view declares ``filter_fields = {"param": Filter("orm_lookup", parse)}``. Any query
parameter that is neither a declared filter nor a known control parameter (``page``,
``format``) is refused with 400 naming it, so a request cannot filter on arbitrary
lookups such as ``created_by__password__startswith``. Values are parsed before they
reach the ORM: a bad value is a 400 too, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import TextChoices
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend

CONTROL_PARAMS = frozenset({"page", "format"})


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def choice_of(choices: type[TextChoices]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices.values:
            raise ValueError(f"must be one of {', '.join(choices.values)}")
        return raw

    parse.choices = list(choices.values)  # type: ignore[attr-defined]
    return parse


@dataclass(frozen=True)
class Filter:
    lookup: str
    parse: Callable[[str], Any] = positive_int
    description: str = ""


def check_query_params(params, allowed: set[str] | frozenset[str]) -> None:
    """Raise 400 naming every query parameter outside ``allowed`` and the control set."""
    unknown = sorted(set(params) - set(allowed) - CONTROL_PARAMS)
    if unknown:
        raise ValidationError({"detail": f"filtering on {', '.join(unknown)} is not allowed"})


def apply_filters(queryset, params, filter_fields: dict[str, Filter]):
    """``queryset`` filtered by the declared parameters present in ``params``."""
    check_query_params(params, set(filter_fields))
    conditions, errors = {}, {}
    for name, spec in filter_fields.items():
        if name not in params:
            continue
        try:
            conditions[spec.lookup] = spec.parse(params[name])
        except ValueError as exc:
            errors[name] = f"{params[name]!r}: {exc}"
    if errors:
        raise ValidationError(errors)
    return queryset.filter(**conditions) if conditions else queryset


class AllowListFilterBackend(BaseFilterBackend):
    """Applies ``view.filter_fields`` to list requests. Other actions accept only the
    parameters named for them in ``view.action_params`` (``{action: {names}}``), which
    the action then parses itself."""

    def filter_queryset(self, request, queryset, view):
        action = getattr(view, "action", None)
        if action != "list":
            check_query_params(request.query_params, getattr(view, "action_params", {}).get(action, set()))
            return queryset
        return apply_filters(queryset, request.query_params, getattr(view, "filter_fields", {}))

    def get_schema_operation_parameters(self, view):
        if getattr(view, "action", None) != "list":
            return []
        parameters = []
        for name, spec in getattr(view, "filter_fields", {}).items():
            schema = (
                {"type": "string", "enum": spec.parse.choices}
                if hasattr(spec.parse, "choices")
                else {"type": "integer", "minimum": 1}
            )
            parameters.append(
                {"name": name, "in": "query", "required": False,
                 "description": spec.description or f"filter on {name}", "schema": schema}
            )
        return parameters
