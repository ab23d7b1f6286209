"""Rows of the HTTP edge: stored answers of idempotent writes.

One receipt per (user, Idempotency-Key), held by a unique constraint, so a retried write
is answered from its receipt instead of being applied twice
(``annotator.web.idempotency``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

__all__ = ["SaveReceipt"]


class SaveReceipt(models.Model):
    """The stored answer to a write sent with an ``Idempotency-Key`` header."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.UUIDField()
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_receipt_per_user_and_key")]

    def __str__(self) -> str:
        return f"receipt {self.key} ({self.status_code})"
