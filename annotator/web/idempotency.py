"""Idempotent writes: a write sent with an ``Idempotency-Key`` header (a UUID) is carried
out once per (user, key); a retry is answered from its stored receipt.

The write and its ``SaveReceipt`` commit in one transaction. A refusal (a domain error)
is an answer too: it is stored, so a retry gets the same refusal rather than a second
try. When two requests with one key race, the second's receipt insert hits the unique
constraint after the first commits; its write is rolled back with it and it answers the
first one's receipt. A key reused for a different request gets 422.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid

from django.db import IntegrityError, transaction
from rest_framework.exceptions import ParseError
from rest_framework.response import Response

from annotator.errors import DomainError
from annotator.web.errors import domain_response
from annotator.web.models import SaveReceipt


def request_fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str).encode()
    return hashlib.sha256(b"\n".join([request.method.encode(), request.path.encode(), body])).hexdigest()


def _replay(receipt: SaveReceipt, fingerprint: str) -> Response:
    if receipt.fingerprint != fingerprint:
        return Response({"detail": "this Idempotency-Key was already used for a different request"}, status=422)
    return Response(receipt.body, status=receipt.status_code)


def idempotent(view):
    """Decorate a DRF function view whose writes may carry an ``Idempotency-Key``."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        raw = request.headers.get("Idempotency-Key")
        if raw is None:
            return view(request, *args, **kwargs)
        try:
            key = uuid.UUID(raw)
        except ValueError as exc:
            raise ParseError("Idempotency-Key must be a UUID") from exc
        fingerprint = request_fingerprint(request)
        receipt = SaveReceipt.objects.filter(user=request.user, key=key).first()
        if receipt is not None:
            return _replay(receipt, fingerprint)
        try:
            with transaction.atomic():
                try:
                    response = view(request, *args, **kwargs)
                except DomainError as error:
                    response = domain_response(error)
                SaveReceipt.objects.create(user=request.user, key=key, fingerprint=fingerprint,
                                           status_code=response.status_code, body=response.data)
        except IntegrityError:
            receipt = SaveReceipt.objects.filter(user=request.user, key=key).first()
            if receipt is None:
                raise
            return _replay(receipt, fingerprint)
        return response

    return wrapper
